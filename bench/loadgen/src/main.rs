//! `loadgen`: the SMTP load generator of bench/run.sh. See bench/README.md.

mod cli;
mod conn;
mod procstat;
mod report;
mod scram;
mod script;
mod session;
mod slots;
mod tls;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::task::JoinSet;

use cli::{Args, Workload};
use report::Run;
use script::Script;
use session::{Plan, Tally};
use slots::Slots;

fn main() -> ExitCode {
    let args = Args::parse();
    match start(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs what `args` ask; true if no transaction failed.
fn start(args: &Args) -> Result<bool, String> {
    if !args.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", args.addr));
    }
    if args.concurrency == 0 || args.rate.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
        return Err("--concurrency and --rate must be positive".into());
    }
    let plan = Arc::new(plan(args)?);
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        if args.warmup > 0 {
            let warm = run(args, &plan, args.warmup, None).await;
            if warm.failures > 0 {
                eprintln!(
                    "loadgen: warm-up: {} failed, first: {:?}",
                    warm.failures, warm.error
                );
            }
        }
        if !args.ramp {
            let r = run(args, &plan, args.count, args.rate).await;
            println!("{}", r.json(args, None));
            return Ok(r.failures == 0);
        }
        let mut rate = args.rate.unwrap_or(2000.0);
        let (mut best, mut flat, mut ok) = (None::<Run>, 0, true);
        for step in 1..=40 {
            let n = ((rate * args.ramp_step_secs) as u64).max(100);
            let r = run(args, &plan, n, Some(rate)).await;
            println!("{}", r.json(args, Some(step)));
            ok &= r.failures == 0;
            if r.failures > 0 {
                break;
            }
            let kept_up = r.throughput() >= 0.95 * rate;
            if best
                .as_ref()
                .is_none_or(|b| r.throughput() > 1.02 * b.throughput())
            {
                best = Some(r);
                flat = 0;
            } else {
                flat += 1;
            }
            if !kept_up || flat >= 2 {
                break;
            }
            rate *= args.ramp_factor;
        }
        if let Some(b) = best {
            println!("{}", b.json(args, Some(0)));
        }
        Ok(ok)
    })
}

fn plan(args: &Args) -> Result<Plan, String> {
    let size = args.size.unwrap_or(if args.workload == Workload::Big {
        10 << 20
    } else {
        1024
    });
    let tls = match (&args.ca, args.workload.tls()) {
        (Some(ca), _) => Some(tls::connector(ca, &args.server_name, args.resume)?),
        (None, true) => return Err(format!("{} needs --ca", args.workload.name())),
        (None, false) => None,
    };
    Ok(Plan {
        workload: args.workload,
        addr: args.addr,
        pipeline: args.pipeline,
        script: Script::new(size, &args.user, &args.pass),
        tls,
        user: args.user.clone(),
        pass: args.pass.clone(),
        op_timeout: Duration::from_secs_f64(args.op_timeout),
    })
}

/// One run of `count` transactions over `--concurrency` connections.
async fn run(args: &Args, plan: &Arc<Plan>, count: u64, rate: Option<f64>) -> Run {
    let c = args.concurrency;
    let slots = Arc::new(Slots::new(
        count,
        Duration::from_secs_f64(args.duration),
        args.max_failures,
        rate,
        c,
    ));
    let expected = (count as usize).div_ceil(c) * 2;
    let gen_cpu = procstat::cpu_ticks(None);
    let server_cpu = args.server_pid.and_then(|p| procstat::cpu_ticks(Some(p)));
    let mut tasks = JoinSet::new();
    for _ in 0..c {
        tasks.spawn(session::drive(plan.clone(), slots.clone(), expected));
    }
    let mut tallies: Vec<Tally> = Vec::with_capacity(c);
    while let Some(t) = tasks.join_next().await {
        tallies.push(t.unwrap_or_else(|e| Tally {
            failures: 1,
            first_error: Some(format!("task panicked: {e}")),
            ..Tally::default()
        }));
    }
    let end = Instant::now();
    slots.stop();
    let elapsed = end.saturating_duration_since(slots.t0);
    let gen_ticks = gen_cpu.and_then(|a| Some(procstat::cpu_ticks(None)? - a));
    let server_ticks = server_cpu.and_then(|a| Some(procstat::cpu_ticks(args.server_pid)? - a));
    let rss = args.server_pid.and_then(procstat::peak_rss_kib);
    let size = plan.script.body_end.len() - 3;
    Run::new(tallies, elapsed, rate, gen_ticks, server_ticks, rss, size)
}
