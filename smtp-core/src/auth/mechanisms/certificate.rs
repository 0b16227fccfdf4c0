//! The identities a client certificate names, for EXTERNAL's authorization identity.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The subject common names, then the subject-alternative-name e-mail addresses and DNS
/// names of the DER certificate `der`, in that order; empty when it does not parse (TLS has
/// verified it already, so that only happens with certificates no client should present).
pub(crate) fn identities(der: &[u8]) -> Vec<String> {
    let Ok((_, certificate)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = certificate
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .collect();
    if let Ok(Some(san)) = certificate.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(email) => names.push((*email).to_owned()),
                GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    names
}
