//! `cargo xtask lab up|down|status`: a real LAVA lab on this machine (Debian's
//! lava-server and lava-dispatcher), so that `--lava` can be tried without a lab of
//! one's own, and tested. PID 1 need not be systemd: each service is started by hand
//! from its unit file's command line, in a process group of its own, on 127.0.0.1 only;
//! their pids go to `lab/state.json` in the cache and `down` stops exactly those (and
//! PostgreSQL only when `up` started it).

use crate::lava::Lab;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xshell::{cmd, Shell};

/// The lab's ports: the web/API server, the publisher (websocket), its event socket.
const HTTP: u16 = 8000;
const WS: u16 = 8001;
const EVENTS: u16 = 5500;
const WORKER: &str = "worker01";
/// Two devices: two jobs at once, which the `--lava` test needs.
const DEVICES: [&str; 2] = ["qemu01", "qemu02"];

/// Our devices' dictionary: the qemu device type, TCG (KVM here may exist and not
/// work), and QEMU's machine as the local backend makes it. The stock template adds a
/// virtio NIC and -nographic's default devices, a different machine: under -icount
/// they moved toggle_touch/1M by 0.23% and mremap_move/1M by 0.08% (medians of 4
/// boots, seeds 1-4), so lab and local figures would not be comparable.
const DEVICE_DICT: &str = "{% extends 'qemu.jinja2' %}
{% set no_kvm = True %}
{% block qemu_options %}
          - -nodefaults
          - -display none
          - -serial stdio
          - -m {{ memory|default(512) }}M
          - -monitor none
{% if extra_options %}
          extra: {{ extra_options }}
{% endif %}
{% endblock qemu_options -%}
";
const DEVICE_DIR: &str = "/etc/lava-server/dispatcher-config/devices";

#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub url: String,
    pub token_file: PathBuf,
    /// (service, pid) of every process `up` started, each its own process group.
    pub services: Vec<(String, u32)>,
    /// Whether `up` started PostgreSQL (then `down` stops it).
    pub postgres: Option<String>,
}

fn dir() -> PathBuf {
    crate::reftree::cache_root().join("lab")
}

fn state_path() -> PathBuf {
    dir().join("state.json")
}

pub fn state() -> Option<State> {
    serde_json::from_slice(&std::fs::read(state_path()).ok()?).ok()
}

/// The token file of the lab `up` started, when `url` is that lab.
pub fn token_file_for(url: &str) -> Option<PathBuf> {
    let s = state()?;
    (crate::lava::base_url(&s.url).ok()? == url && s.token_file.is_file()).then_some(s.token_file)
}

/// Starts the lab (installing what is missing when root); prints where it is.
pub fn up() -> Result<State> {
    if let Some(s) = state() {
        if s.services.iter().all(|(_, pid)| crate::host::running(*pid)) {
            crate::progress::say(&format!(
                "[lab] already up at {} (token in {})",
                s.url,
                s.token_file.display()
            ));
            return Ok(s);
        }
        // A lab half gone (a crash, a reboot): stop what is left, then start again.
        down()?;
    }
    let started = Instant::now();
    std::fs::create_dir_all(dir())?;
    crate::host::require(&[("pg_ctlcluster", "postgresql")])?;
    let postgres = start_postgres()?;
    let mut state = State {
        url: format!("http://127.0.0.1:{HTTP}/"),
        token_file: dir().join("token"),
        services: vec![],
        postgres,
    };
    // Saved at once: whatever fails below, `down` stops what was started.
    save(&state)?;
    let r = start(&mut state);
    save(&state)?;
    r?;
    crate::progress::say(&format!(
        "[lab] up at {} in {:.0} s: device type qemu, devices {}; token in {} (stop it with `cargo xtask lab down`)",
        state.url,
        started.elapsed().as_secs_f64(),
        DEVICES.join(", "),
        state.token_file.display()
    ));
    Ok(state)
}

fn save(s: &State) -> Result<()> {
    crate::rundir::write_json(&state_path(), s)
}

/// PostgreSQL's cluster started if it was down: its "version cluster" then.
fn start_postgres() -> Result<Option<String>> {
    let sh = Shell::new()?;
    let list = cmd!(sh, "pg_lsclusters --no-header").quiet().read()?;
    let Some(row) = list.lines().next() else {
        bail!("PostgreSQL has no cluster: run `pg_createcluster --start 15 main` (Debian's postgresql package makes one)");
    };
    let f: Vec<&str> = row.split_whitespace().collect();
    let (version, cluster, status) = (f[0], f[1], f.get(3).copied().unwrap_or(""));
    if status == "online" {
        return Ok(None);
    }
    cmd!(sh, "pg_ctlcluster {version} {cluster} start").quiet().run().context("cannot start PostgreSQL")?;
    Ok(Some(format!("{version} {cluster}")))
}

fn start(state: &mut State) -> Result<()> {
    // lava-server's postinst sets the database up only when PostgreSQL runs: install
    // it now that it does. Recommends would bring apache2, lxc and nfs.
    if !crate::host::have("lava-server") || !crate::host::have("lava-worker") {
        crate::host::install_with(
            &["lava-server", "lava-dispatcher", "qemu-system-x86"],
            &["--no-install-recommends"],
        )?;
    }
    // Its database (made by the package's postinst only while PostgreSQL ran) answers,
    // or is made now; the system's python3, which has Django.
    if !Path::new("/etc/lava-server/settings.d/00-database.yaml").is_file()
        || manage(&["users", "list"]).is_err()
    {
        let sh = Shell::new()?;
        cmd!(sh, "/usr/bin/python3 /usr/share/lava-server/postinst.py").quiet().ignore_stdout().run()?;
    }
    for port in [HTTP, WS, EVENTS] {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            bail!("127.0.0.1:{port} is in use: the lab needs ports {HTTP}, {WS} and {EVENTS}; stop what listens there (`ss -ltnp`)");
        }
    }
    let logs = dir().join("logs");
    std::fs::create_dir_all(&logs)?;
    // The services drop to the lavaserver user: their logs where the packages keep them.
    let gunicorn_log = "/var/log/lava-server/gunicorn.log";
    let publisher_log = "/var/log/lava-server/lava-publisher.log";
    let scheduler_log = "/var/log/lava-server/lava-scheduler.log";
    let bind = format!("127.0.0.1:{HTTP}");
    let events = format!("tcp://127.0.0.1:{EVENTS}");
    // The unit files' ExecStart lines, bound to 127.0.0.1 (the publisher's event
    // socket binds every interface unless told).
    spawn(
        state,
        "gunicorn",
        &[
            "gunicorn3",
            "lava_server.wsgi",
            "--log-file",
            gunicorn_log,
            "-u",
            "lavaserver",
            "-g",
            "lavaserver",
            "--worker-class",
            "eventlet",
            "--workers",
            "2",
            "--bind",
            &bind,
        ],
    )?;
    spawn(
        state,
        "publisher",
        &[
            "lava-server",
            "manage",
            "lava-publisher",
            "--log-file",
            publisher_log,
            "--host",
            "127.0.0.1",
            "--port",
            &WS.to_string(),
        ],
    )?;
    spawn(
        state,
        "scheduler",
        &["lava-server", "manage", "lava-scheduler", "--log-file", scheduler_log, "--event-url", &events],
    )?;
    wait_for(&format!("{}api/v0.2/system/version/", state.url), Duration::from_secs(60))?;
    let worker_token = provision(state)?;
    let worker_log = "/var/log/lava-dispatcher/lava-worker.log";
    let token_file = dir().join("worker-token");
    write_secret(&token_file, &worker_token)?;
    let token_file = token_file.display().to_string();
    let url = state.url.clone();
    let ws = format!("http://127.0.0.1:{WS}/ws/");
    spawn(
        state,
        "worker",
        &[
            "lava-worker",
            "--level",
            "INFO",
            "--log-file",
            worker_log,
            "--url",
            &url,
            "--ws-url",
            &ws,
            "--token-file",
            &token_file,
            "--name",
            WORKER,
            "--ping-interval",
            "5",
        ],
    )?;
    wait_devices(state, Duration::from_secs(90))?;
    if let Some((name, pid)) = state.services.iter().find(|(_, pid)| !crate::host::running(*pid)) {
        bail!(
            "the lab's {name} (pid {pid}) stopped after it started; see {}",
            logs.join(format!("{name}.out")).display()
        );
    }
    Ok(())
}

/// A service in a process group of its own, outliving this command; its output to
/// the lab's logs.
fn spawn(state: &mut State, name: &str, argv: &[&str]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(dir().join("logs").join(format!("{name}.out")))?;
    let child = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir())
        .env("LAVA_SETTINGS_EVENT_SOCKET", format!("tcp://127.0.0.1:{EVENTS}"))
        // Jobs start when submitted rather than at the scheduler's next poll.
        .env("LAVA_SETTINGS_EVENT_NOTIFICATION", "true")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", argv[0]))?;
    state.services.push((name.to_string(), child.id()));
    save(state)
}

fn wait_for(url: &str, limit: Duration) -> Result<()> {
    let started = Instant::now();
    let tmp = tempfile::NamedTempFile::new_in(dir())?;
    while started.elapsed() < limit {
        let got = crate::http::curl(&["--max-time", "5"], url, tmp.path(), None)?;
        if got.exit == Some(0) && got.status == "200" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!(
        "the lab's server did not answer {url} within {} s; see {}",
        limit.as_secs(),
        dir().join("logs").display()
    )
}

/// `lava-server manage ARGS`: its output.
fn manage(args: &[&str]) -> Result<String> {
    let sh = Shell::new()?;
    let out = cmd!(sh, "lava-server manage {args...}").quiet().ignore_status().output()?;
    if !out.status.success() {
        bail!(
            "lava-server manage {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write_secret(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
    writeln!(f, "{secret}")?;
    Ok(())
}

/// Once per database (each step only when missing): the admin user and its API
/// token, the worker, the qemu device type and two devices. The worker's token.
fn provision(state: &State) -> Result<String> {
    let users = manage(&["users", "list"])?;
    if !users.lines().any(|l| l.split_whitespace().any(|w| w == "admin")) {
        let password = crate::lava::random_word();
        manage(&["users", "add", "--superuser", "--staff", "--passwd", &password, "admin"])?;
    }
    let token_ok = crate::lava::read_token(&state.token_file)
        .ok()
        .and_then(|t| Lab::new(&state.url, &t).ok())
        .is_some_and(|lab| lab.check_user().is_ok_and(|u| u == "admin"));
    if !token_ok {
        let out = manage(&["tokens", "add", "--user", "admin"])?;
        let token = out.lines().last().unwrap_or_default().trim().to_string();
        write_secret(&state.token_file, &token)?;
    }
    let worker = match manage(&["workers", "details", WORKER]) {
        Ok(out) => out,
        Err(_) => manage(&["workers", "add", "--health", "ACTIVE", WORKER])?,
    };
    let token = worker
        .lines()
        .find_map(|l| l.trim().strip_prefix("Token:").or_else(|| l.trim().strip_prefix("token")))
        .map(|t| t.trim().trim_start_matches(':').trim().to_string())
        .filter(|t| !t.is_empty())
        .context("lava-server did not say the worker's token")?;
    if !manage(&["device-types", "list"])?.lines().any(|l| l.split_whitespace().any(|w| w == "qemu")) {
        manage(&["device-types", "add", "qemu"])?;
    }
    let devices = manage(&["devices", "list", "--all"])?;
    for name in DEVICES {
        std::fs::write(Path::new(DEVICE_DIR).join(format!("{name}.jinja2")), DEVICE_DICT)?;
        if !devices.lines().any(|l| l.split_whitespace().any(|w| w == name)) {
            manage(&["devices", "add", "--device-type", "qemu", "--worker", WORKER, name])?;
        }
    }
    Ok(token)
}

/// Until the worker is online and every device of ours is ready for jobs.
fn wait_devices(state: &State, limit: Duration) -> Result<()> {
    let lab = Lab::new(&state.url, &crate::lava::read_token(&state.token_file)?)?;
    let started = Instant::now();
    loop {
        let ready = lab.devices_ready("qemu").unwrap_or_default();
        if DEVICES.iter().all(|d| ready.iter().any(|r| r == d)) {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "the lab's devices are not ready after {} s (ready: {ready:?}); see {}",
                limit.as_secs(),
                dir().join("logs").display()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Stops what `up` started: each service's process group (TERM, then KILL after
/// 20 s), then PostgreSQL if `up` started it.
pub fn down() -> Result<()> {
    let Some(state) = state() else {
        crate::progress::say("[lab] not up (nothing recorded)");
        return Ok(());
    };
    let sh = Shell::new()?;
    // The worker first: it ends its jobs' QEMUs.
    for (name, pid) in state.services.iter().rev() {
        if !crate::host::running(*pid) {
            continue;
        }
        let group = format!("-{pid}");
        let _ = cmd!(sh, "kill -TERM -- {group}").quiet().ignore_status().ignore_stderr().run();
        if !crate::host::wait_group_gone(*pid, Duration::from_secs(20)) {
            let _ = cmd!(sh, "kill -KILL -- {group}").quiet().ignore_status().ignore_stderr().run();
        }
        crate::progress::say(&format!("[lab] stopped {name} (pid {pid})"));
    }
    if let Some(pg) = &state.postgres {
        let f: Vec<&str> = pg.split_whitespace().collect();
        if let [version, cluster] = f[..] {
            cmd!(sh, "pg_ctlcluster {version} {cluster} stop").quiet().ignore_status().run()?;
            crate::progress::say(&format!("[lab] stopped PostgreSQL {pg}"));
        }
    }
    std::fs::remove_file(state_path())?;
    Ok(())
}

/// `lab status`: what runs, where.
pub fn status() -> Result<String> {
    let Some(s) = state() else { return Ok("lab: not up".into()) };
    let mut out = format!("lab: {} (token in {})\n", s.url, s.token_file.display());
    for (name, pid) in &s.services {
        out +=
            &format!("  {name}: pid {pid} {}\n", if crate::host::running(*pid) { "running" } else { "gone" });
    }
    if let Some(pg) = &s.postgres {
        out += &format!("  postgresql {pg}: started by lab up\n");
    }
    Ok(out)
}
