//! The handler macros' compile errors: one mistake per file in `tests/ui/`, each with its
//! reviewed `.stderr`. Their successful expansions are tested in `it/macros.rs`.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
