//! `cargo xtask up`: build the three binaries and run them on SQLite, in the
//! foreground, until Ctrl-C, with a local Jira simulator and local chat tools
//! to try them against.
//!
//! Data lives in `./data/` of the workspace (created on first run). The
//! simulator listens on 127.0.0.1:8071 and posts its webhooks to the tracker
//! for the integration `sim-jira` (secret `sim-webhook-secret-0123`); the
//! tracker runs with `--jira-allow-loopback` so an integration may point at it
//! (a local set-up only: production refuses loopback targets). The notifier
//! delivers to `chat-sim` (Slack, Discord and webhooks faked on 127.0.0.1:8091;
//! `GET /_sim/messages` shows what people would see). Ctrl-C reaches
//! every process (they share the terminal's process group) and each drains and
//! exits; this task then waits for them.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::workspace::{self, cargo, run as run_command};

/// Default addresses, as the services' own defaults.
const ASSIGNMENT_GRPC: &str = "127.0.0.1:50061";
const ASSIGNMENT_HTTP: &str = "127.0.0.1:8061";
const TRACKER_GRPC: &str = "127.0.0.1:50051";
const TRACKER_HTTP: &str = "127.0.0.1:8051";
const JIRA_SIM: &str = "127.0.0.1:8071";
const NOTIFIER_GRPC: &str = "127.0.0.1:50071";
const NOTIFIER_HTTP: &str = "127.0.0.1:8081";
const CHAT_SIM: &str = "127.0.0.1:8091";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let release = args.iter().any(|a| a == "--release");
    let mut build = cargo();
    build.args([
        "build",
        "--bin",
        "assignment-service",
        "--bin",
        "tracker-service",
        "--bin",
        "jira-sim",
        "--bin",
        "notifier",
        "--bin",
        "chat-sim",
    ]);
    if release {
        build.arg("--release");
    }
    run_command(build, "building the services and simulators")?;

    let root = workspace::root();
    let bin_dir = root
        .join("target")
        .join(if release { "release" } else { "debug" });
    let mut assignment = spawn(
        Command::new(bin_dir.join("assignment-service"))
            .current_dir(&root)
            .args([
                "--grpc-addr",
                ASSIGNMENT_GRPC,
                "--http-addr",
                ASSIGNMENT_HTTP,
            ]),
        "assignment-service",
    )?;
    wait_healthy(ASSIGNMENT_HTTP, &mut assignment, "assignment-service")?;
    let mut tracker = spawn(
        Command::new(bin_dir.join("tracker-service"))
            .current_dir(&root)
            .args([
                "--grpc-addr",
                TRACKER_GRPC,
                "--http-addr",
                TRACKER_HTTP,
                "--assignment-url",
                &format!("http://{ASSIGNMENT_GRPC}"),
                "--jira-allow-loopback",
            ]),
        "tracker-service",
    )?;
    wait_healthy(TRACKER_HTTP, &mut tracker, "tracker-service")?;
    let mut jira = spawn(
        Command::new(bin_dir.join("jira-sim")).args([
            "--addr",
            JIRA_SIM,
            "--webhook-url",
            &format!("http://{TRACKER_HTTP}/webhooks/jira/sim-jira"),
        ]),
        "jira-sim",
    )?;
    let mut chat = spawn(
        Command::new(bin_dir.join("chat-sim")).args(["--addr", CHAT_SIM]),
        "chat-sim",
    )?;
    let mut notifier = spawn(
        Command::new(bin_dir.join("notifier"))
            .current_dir(&root)
            .args([
                "--grpc-addr",
                NOTIFIER_GRPC,
                "--http-addr",
                NOTIFIER_HTTP,
                "--assignment-url",
                &format!("http://{ASSIGNMENT_GRPC}"),
                "--slack-api-url",
                &format!("http://{CHAT_SIM}/slack/api"),
                "--discord-api-url",
                &format!("http://{CHAT_SIM}/discord/api/v10"),
                "--allow-http-webhooks",
            ]),
        "notifier",
    )?;
    wait_healthy(NOTIFIER_HTTP, &mut notifier, "notifier")?;

    println!(
        "\n\
         the services are up (SQLite files in {data}):\n\
         \n  assignment-service  gRPC {ASSIGNMENT_GRPC}   HTTP http://{ASSIGNMENT_HTTP}/healthz\n\
         \n  tracker-service     gRPC {TRACKER_GRPC}   HTTP http://{TRACKER_HTTP}/healthz  (webhooks: POST /webhooks/jira/{{integration}})\n\
         \n  notifier            gRPC {NOTIFIER_GRPC}   HTTP http://{NOTIFIER_HTTP}/healthz\n\
         \n  jira-sim            http://{JIRA_SIM}  (webhooks to the tracker's integration sim-jira)\n\
         \n  chat-sim            http://{CHAT_SIM}/_sim/messages  (what the notifier sent and edited)\n\
         \ntry: grpcurl -plaintext {ASSIGNMENT_GRPC} list\n\
         Ctrl-C stops them all.\n",
        data = root.join("data").display()
    );

    // Ctrl-C reaches the children directly; we only wait for them to exit.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    for (child, name) in [
        (&mut notifier, "notifier"),
        (&mut chat, "chat-sim"),
        (&mut jira, "jira-sim"),
        (&mut tracker, "tracker-service"),
        (&mut assignment, "assignment-service"),
    ] {
        loop {
            if let Some(status) = child.try_wait()? {
                println!("{name} exited ({status})");
                break;
            }
            if Instant::now() > deadline {
                println!("{name} did not stop in time; killing it");
                child.kill()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn spawn(command: &mut Command, name: &str) -> anyhow::Result<Child> {
    command.spawn().with_context(|| format!("starting {name}"))
}

/// Waits until `GET /healthz` answers 200, or the child exits, or 60 s pass.
fn wait_healthy(http: &str, child: &mut Child, name: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = http.parse()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited before it was healthy ({status}); see its log above");
        }
        if healthz(addr) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} was not healthy within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}
