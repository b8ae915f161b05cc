//! Every example's command line: each answers `--help` with its usage and
//! every option and argument, described, with its default where it has one;
//! clap finds its definition sound; and each parses to the defaults it has
//! always had.
//!
//! Each example's source is mounted here whole, as its binary is built, so
//! these are the very `Args` its `main` parses, through the same clap calls;
//! the `main`s are not run. Running the binaries instead would need them
//! built first, which `cargo test --test examples` does not do: it would
//! test whatever stale binary lay in `target/`. `retention`'s workloads are
//! run too, in a tiny configuration, to check their accounting.

// The socket examples each mount `examples/common/`, and the packet
// examples `examples/pcap/`, as their binaries do; here that makes a copy of
// the shared module in each.
#![allow(
    clippy::duplicate_mod,
    reason = "each example's source is mounted whole, with its own shared modules"
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Command, CommandFactory, Parser};

#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/backpressure.rs"]
mod backpressure;
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/bench_report.rs"]
mod bench_report;
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/echo_client.rs"]
mod echo_client;
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/echo_server.rs"]
mod echo_server;
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/pcap_flows.rs"]
mod pcap_flows;
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/profile_alloc.rs"]
mod profile_alloc;
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/quickstart.rs"]
mod quickstart;
#[cfg(feature = "tokio")]
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/resp_server.rs"]
mod resp_server;
#[allow(dead_code, reason = "only the example's command line and workloads are used here, not its `main`")]
#[path = "../examples/retention.rs"]
mod retention;
#[cfg(feature = "tokio")]
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/tokio_echo.rs"]
mod tokio_echo;
#[cfg(feature = "tokio")]
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/tokio_load.rs"]
mod tokio_load;
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/udp_relay.rs"]
mod udp_relay;
#[cfg(all(feature = "io-uring", target_os = "linux"))]
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/udp_relay_uring.rs"]
mod udp_relay_uring;
#[allow(dead_code, reason = "only the example's command line is used here, not its `main`")]
#[path = "../examples/vxlan_encap.rs"]
mod vxlan_encap;

/// `text` with every run of whitespace made one space, so that a description
/// reads the same however clap wraps it.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs `argv` (ending in `--help`) through `cmd` and checks the help it
/// prints: parsing stops with help to display and exit status 0, as
/// `Parser::parse` and the examples' `run_main` do, and the text starts its
/// usage line with `usage` and names and describes each argument of the
/// (sub)command `described`, with its default where it has one.
fn check_help(cmd: &Command, argv: &[&str], usage: &str, described: &Command) {
    let err = cmd.clone().try_get_matches_from(argv).expect_err("--help stops parsing");
    assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{argv:?}");
    assert!(!err.use_stderr(), "{argv:?}: help goes to stdout");
    assert_eq!(err.exit_code(), 0, "{argv:?}");
    let help = squeeze(&err.render().to_string());
    assert!(help.contains(&format!("Usage: {usage}")), "{argv:?}: {help}");
    for arg in described.get_arguments() {
        let id = arg.get_id();
        if id == "help" {
            continue;
        }
        let named = match arg.get_long() {
            Some(long) => format!("--{long}"),
            None => {
                format!("<{}>", arg.get_value_names().expect("a positional argument has a value name")[0])
            }
        };
        assert!(help.contains(&named), "{argv:?}: {named} missing from {help}");
        let about = arg.get_help().unwrap_or_else(|| panic!("{argv:?}: {id} has no description"));
        assert!(
            help.contains(&squeeze(&about.to_string())),
            "{argv:?}: {id}'s description missing from {help}"
        );
        for default in arg.get_default_values() {
            let shown = format!("[default: {}]", default.to_string_lossy());
            assert!(help.contains(&shown), "{argv:?}: {shown} missing from {help}");
        }
    }
}

/// Checks example `C`'s definition, named `name`, and the `--help` of it
/// and of each of its subcommands.
fn check_example<C: CommandFactory>(name: &str) {
    let cmd = C::command();
    assert_eq!(cmd.get_name(), name);
    cmd.clone().debug_assert();
    check_help(&cmd, &[name, "--help"], name, &cmd);
    for sub in cmd.get_subcommands() {
        let sub_name = sub.get_name();
        check_help(&cmd, &[name, sub_name, "--help"], &format!("{name} {sub_name}"), sub);
    }
    let err = cmd.try_get_matches_from([name, "--no-such-option"]).expect_err("an unknown option");
    assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    assert!(err.use_stderr() && err.exit_code() != 0, "a usage error fails, on stderr");
}

/// Every example answers `--help` with its usage and each option, described,
/// with its default, and refuses an unknown option.
#[test]
#[cfg_attr(miri, ignore = "command lines only: no pool memory is touched")]
fn every_example_answers_help() {
    check_example::<backpressure::Args>("backpressure");
    check_example::<bench_report::Args>("bench_report");
    check_example::<echo_client::Args>("echo_client");
    check_example::<echo_server::Args>("echo_server");
    check_example::<pcap_flows::Args>("pcap_flows");
    check_example::<profile_alloc::Args>("profile_alloc");
    check_example::<quickstart::Args>("quickstart");
    check_example::<retention::Args>("retention");
    #[cfg(feature = "tokio")]
    {
        check_example::<resp_server::Args>("resp_server");
        check_example::<tokio_echo::Args>("tokio_echo");
        check_example::<tokio_load::Args>("tokio_load");
    }
    check_example::<udp_relay::Args>("udp_relay");
    #[cfg(all(feature = "io-uring", target_os = "linux"))]
    check_example::<udp_relay_uring::Args>("udp_relay_uring");
    check_example::<vxlan_encap::Args>("vxlan_encap");
}

/// Parses `argv` as example `P`'s command line.
fn parse<P: Parser>(argv: &[&str]) -> P {
    P::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// Without options, the socket examples get the defaults they had before
/// clap, and each option sets its field.
#[test]
#[cfg_attr(miri, ignore = "command lines only: no pool memory is touched")]
fn socket_examples_defaults_and_options() {
    let addr: SocketAddr = "127.0.0.1:7878".parse().unwrap();

    let client = parse::<echo_client::Args>(&["echo_client"]).config();
    assert_eq!(
        (client.addr, client.frames, client.duration, client.max_payload),
        (addr, 10_000, Duration::from_secs(10), 16 << 20)
    );
    let argv =
        ["echo_client", "--addr", "[::1]:9", "--frames", "5", "--duration", "0.25", "--max-payload", "70"];
    let client = parse::<echo_client::Args>(&argv).config();
    assert_eq!(
        (client.addr, client.frames, client.duration, client.max_payload),
        ("[::1]:9".parse().unwrap(), 5, Duration::from_millis(250), 70)
    );

    let server = parse::<echo_server::Args>(&["echo_server"]).config();
    assert_eq!(
        (server.addr, server.max_frame, server.baseline, server.frames, server.duration),
        (addr, 16 << 20, false, u64::MAX, Duration::from_secs(60))
    );
    let argv = ["echo_server", "--baseline", "--frames", "7", "--max-frame", "100", "--duration", "1.5"];
    let server = parse::<echo_server::Args>(&argv).config();
    assert_eq!(
        (server.max_frame, server.baseline, server.frames, server.duration),
        (100, true, 7, Duration::from_millis(1500))
    );

    let relay = parse::<udp_relay::Args>(&["udp_relay"]).relay.config();
    assert_eq!(
        (relay.datagrams, relay.duration, relay.window, relay.recv_buffer),
        (100_000, Duration::from_secs(10), 32, None)
    );
    let relay =
        parse::<udp_relay::Args>(&["udp_relay", "--rcvbuf", "4096", "--window", "256"]).relay.config();
    assert_eq!((relay.window, relay.recv_buffer), (256, Some(4096)));
    let relay = parse::<udp_relay::Args>(&["udp_relay", "--rcvbuf", "0"]).relay.config();
    assert_eq!(relay.recv_buffer, None, "0 asks for the window's buffers");
    let relay = parse::<udp_relay::Args>(&["udp_relay", "--size", "64"]).relay.config();
    assert_eq!((relay.size, relay.window), (Some(64), 32));

    for bad in ["-1", "x", "inf"] {
        let err = echo_client::Args::try_parse_from(["echo_client", "--duration", bad]).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::ValueValidation, "--duration {bad}");
    }
}

/// `resp_server`'s defaults (redis-server's port and bulk length limit, no
/// budget), and each option setting its field.
#[cfg(feature = "tokio")]
#[test]
#[cfg_attr(miri, ignore = "command lines only: no pool memory is touched")]
fn resp_server_defaults_and_options() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let fields = |argv: &[&str]| {
        let c = parse::<resp_server::Args>(argv).config();
        (c.addr, c.threads, c.maxmemory, c.max_bulk_len, c.keep_from, c.baseline)
    };
    assert_eq!(
        fields(&["resp_server"]),
        ("127.0.0.1:6379".parse().unwrap(), cpus, usize::MAX, 512 << 20, 16 << 10, false)
    );
    let argv = [
        "resp_server",
        "--addr",
        "0.0.0.0:7000",
        "--threads",
        "1",
        "--maxmemory",
        "1048576",
        "--proto-max-bulk-len",
        "1000",
        "--keep-from",
        "100",
        "--baseline",
    ];
    assert_eq!(fields(&argv), ("0.0.0.0:7000".parse().unwrap(), 1, 1 << 20, 1000, 100, true));
    let err = resp_server::Args::try_parse_from(["resp_server", "--threads", "0"]).expect_err("no threads");
    assert_eq!(err.kind(), ErrorKind::ValueValidation);
}

/// The tokio examples' defaults, parallel to `echo_server`'s and
/// `echo_client`'s, and each option setting its field.
#[cfg(feature = "tokio")]
#[test]
#[cfg_attr(miri, ignore = "command lines only: no pool memory is touched")]
fn tokio_examples_defaults_and_options() {
    let addr: SocketAddr = "127.0.0.1:7878".parse().unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);

    let server = parse::<tokio_echo::Args>(&["tokio_echo"]).config();
    assert_eq!(
        (server.addr, server.max_frame, server.max_bytes, server.baseline, server.threads),
        (addr, 16 << 20, None, false, cpus)
    );
    assert_eq!((server.frames, server.duration), (u64::MAX, Duration::from_secs(60)));
    let argv = [
        "tokio_echo",
        "--baseline",
        "--threads",
        "1",
        "--max-bytes",
        "8388608",
        "--max-frame",
        "100",
        "--frames",
        "7",
        "--duration",
        "1.5",
    ];
    let server = parse::<tokio_echo::Args>(&argv).config();
    assert_eq!(
        (server.max_frame, server.max_bytes, server.baseline, server.threads, server.frames, server.duration),
        (100, Some(8 << 20), true, 1, 7, Duration::from_millis(1500))
    );
    let err = tokio_echo::Args::try_parse_from(["tokio_echo", "--threads", "0"]).expect_err("no threads");
    assert_eq!(err.kind(), ErrorKind::ValueValidation);

    let (load, threads) = parse::<tokio_load::Args>(&["tokio_load"]).config();
    assert_eq!(
        (
            load.addr,
            load.connections,
            load.in_flight,
            load.min,
            load.max,
            load.duration,
            load.frames,
            threads
        ),
        (addr, 64, 16, 64, 16384, Duration::from_secs(10), u64::MAX, cpus)
    );
    let argv = [
        "tokio_load",
        "--connections",
        "3",
        "--in-flight",
        "2",
        "--min",
        "0",
        "--max",
        "9",
        "--frames",
        "5",
        "--threads",
        "1",
        "--duration",
        "0.5",
    ];
    let (load, threads) = parse::<tokio_load::Args>(&argv).config();
    assert_eq!(
        (load.connections, load.in_flight, load.min, load.max, load.frames, load.duration, threads),
        (3, 2, 0, 9, 5, Duration::from_millis(500), 1)
    );
    let err =
        tokio_load::Args::try_parse_from(["tokio_load", "--in-flight", "0"]).expect_err("none in flight");
    assert_eq!(err.kind(), ErrorKind::ValueValidation);
}

/// Without options, the other examples get the defaults they had before
/// clap, and each option and argument sets its field.
#[test]
#[cfg_attr(miri, ignore = "command lines only: no pool memory is touched")]
fn other_examples_defaults_and_options() {
    assert_eq!(parse::<backpressure::Args>(&["backpressure"]).seconds, 3);
    assert_eq!(parse::<backpressure::Args>(&["backpressure", "--seconds", "1"]).seconds, 1);
    assert_eq!(parse::<bench_report::Args>(&["bench_report"]).svg, None);
    let svg = parse::<bench_report::Args>(&["bench_report", "--svg", "chart.svg"]).svg;
    assert_eq!(svg, Some(PathBuf::from("chart.svg")));
    parse::<quickstart::Args>(&["quickstart"]);
    let retention = parse::<retention::Args>(&["retention"]);
    assert_eq!((retention.allocations, retention.workload, retention.rounds), (200_000, None, 5));
    let argv = ["retention", "--allocations", "5", "--workload", "keep-1-in-20", "--rounds", "1"];
    let retention = parse::<retention::Args>(&argv);
    assert_eq!(
        (retention.allocations, retention.workload, retention.rounds),
        (5, Some(retention::Workload::Keep1In20), 1)
    );
    let err = retention::Args::try_parse_from(["retention", "--rounds", "0"]).expect_err("no rounds");
    assert_eq!(err.kind(), ErrorKind::ValueValidation);

    use profile_alloc::Program;
    let program = parse::<profile_alloc::Args>(&["profile_alloc", "loop", "64", "1000"]).program;
    assert_eq!(program, Program::Loop { len: 64, n: 1000 });
    assert_eq!(parse::<profile_alloc::Args>(&["profile_alloc", "atomic"]).program, Program::Atomic);
    let err = profile_alloc::Args::try_parse_from(["profile_alloc"]).expect_err("a program is required");
    assert!(err.use_stderr() && err.exit_code() == 2, "{err}");

    let flows = parse::<pcap_flows::Args>(&["pcap_flows", "in.pcap"]);
    assert_eq!((flows.path, flows.copy), (PathBuf::from("in.pcap"), false));
    assert!(parse::<pcap_flows::Args>(&["pcap_flows", "--copy", "in.pcap"]).copy);

    let vxlan = parse::<vxlan_encap::Args>(&["vxlan_encap", "in.pcap", "out.pcap", "--vni", "42"]);
    assert_eq!((vxlan.input, vxlan.output, vxlan.vni), ("in.pcap".into(), "out.pcap".into(), 42));
    assert_eq!(
        (vxlan.outer_src, vxlan.outer_dst),
        (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2))
    );
    // `Oversize` lies in the example's private `pcap` module; its `Debug`
    // names the variant.
    assert_eq!(format!("{:?}", vxlan.oversize), "Skip");
    let argv =
        ["vxlan_encap", "--oversize", "fail", "--vni", "16777215", "a", "b", "--outer-src", "10.0.0.1"];
    let vxlan = parse::<vxlan_encap::Args>(&argv);
    assert_eq!((vxlan.vni, vxlan.outer_src), (16_777_215, Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(format!("{:?}", vxlan.oversize), "Fail");
    for argv in [
        &["vxlan_encap", "a", "b"][..],
        &["vxlan_encap", "a", "--vni", "1"],
        &["vxlan_encap", "a", "b", "--vni", "16777216"],
        &["vxlan_encap", "a", "b", "--vni", "1", "--oversize", "drop"],
    ] {
        let err = vxlan_encap::Args::try_parse_from(argv).expect_err("a usage error");
        assert!(err.use_stderr() && err.exit_code() == 2, "{argv:?}: {err}");
    }
}

/// `retention`'s workloads, in a tiny configuration: each side ends with
/// the bytes the plan leaves alive, all of them counted, and the pool holds
/// at least those. `Vec`'s held bytes are not checked: glibc counts the
/// whole process's allocations, and the other tests run alongside.
#[test]
#[cfg_attr(miri, ignore = "calls glibc's malloc statistics and reads /proc")]
fn retention_accounts_for_every_live_byte() {
    use refbuf::Pool;
    use retention::{Malloc, Plan, Refbuf, Workload, run};

    for workload in [Workload::Keep1In100, Workload::Keep1In20, Workload::Uniform] {
        let plan = Plan::new(workload, 3000);
        let expected = plan.live_at_end();
        assert!(expected > 0, "{workload:?}: some slices outlive the run");
        for pooled in [run(&plan, Refbuf::new(Pool::new())), run(&plan, Refbuf::send(Pool::new()))] {
            assert_eq!(pooled.live, expected, "{workload:?}");
            let held = pooled.held_per_live.expect("a pool knows what it holds");
            assert!(
                held >= 1.0 && pooled.max_held_per_live.unwrap() >= 1.0,
                "{workload:?}: held/live {held}"
            );
            assert!(pooled.ns_per_slice > 0.0);
        }
        assert_eq!(run(&plan, Malloc).live, expected, "{workload:?}");
    }
}
