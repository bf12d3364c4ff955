//! A real nginx-rtmp server per test, on a free loopback port, recording every published stream.

use super::{port_open, require_tool, tmp_dir, wait_until};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_DEADLINE: Duration = Duration::from_secs(10);
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How long a recording's size must stay put before we call it finished.
const SIZE_STABLE_FOR: Duration = Duration::from_millis(300);

#[derive(Clone, Debug)]
pub struct NginxOptions {
    /// nginx appends `-UNIXTIME` to each recording instead of overwriting `KEY.flv`.
    pub record_unique: bool,
    /// Every publish is refused (`NetStream.Publish.BadName`/disconnect), to test rejection paths.
    pub deny_publish: bool,
    pub app: String,
}

impl Default for NginxOptions {
    fn default() -> Self {
        NginxOptions { record_unique: false, deny_publish: false, app: "live".to_string() }
    }
}

pub struct Nginx {
    opts: NginxOptions,
    port: u16,
    dir: PathBuf,
    record_dir: PathBuf,
    conf: PathBuf,
    error_log: PathBuf,
    nginx_bin: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    pub fn start(opts: NginxOptions) -> Nginx {
        let nginx_bin = require_tool("nginx");
        let module = rtmp_module(&nginx_bin);
        let dir = tmp_dir("nginx");
        let record_dir = dir.join("rec");
        fs::create_dir_all(&record_dir).expect("create record dir");
        // Workers run as `nobody` unless we are root and say `user root`; either way they must be able
        // to write here, and to reach it through the temp dir.
        set_mode(&dir, 0o755);
        set_mode(&record_dir, 0o777);
        let mut nginx = Nginx {
            opts,
            port: 0,
            conf: dir.join("nginx.conf"),
            error_log: dir.join("error.log"),
            dir,
            record_dir,
            nginx_bin,
            child: None,
        };
        // free_port() can race with other processes on this shared machine: retry on a fresh port
        // when nginx says the address is taken.
        let mut last_err = String::new();
        for _ in 0..5 {
            nginx.port = super::free_port();
            fs::write(&nginx.conf, nginx.config(module.as_deref())).expect("write nginx.conf");
            match nginx.spawn() {
                Ok(()) => return nginx,
                Err(e) if e.contains("Address already in use") => last_err = e,
                Err(e) => panic!("nginx failed to start:\n{e}"),
            }
        }
        panic!("nginx could not bind a free port after 5 tries:\n{last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn app(&self) -> &str {
        &self.opts.app
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{}/{}", self.port, self.opts.app, key)
    }

    pub fn record_dir(&self) -> &Path {
        &self.record_dir
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// All `.flv` files in the record directory, sorted by name.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.record_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "flv"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Recordings of one stream key, oldest first. With `record_unique` nginx names them
    /// `KEY-UNIXTIME.flv` (seconds: two publishes within one second share a name and the second one
    /// truncates the first).
    pub fn recordings_of(&self, key: &str) -> Vec<PathBuf> {
        let mut found: Vec<(u64, PathBuf)> = self
            .recordings()
            .into_iter()
            .filter_map(|p| {
                let stem = p.file_stem()?.to_str()?.to_string();
                if stem == key {
                    return Some((0, p));
                }
                let ts = stem.strip_prefix(key)?.strip_prefix('-')?;
                ts.parse::<u64>().ok().map(|t| (t, p))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// The recording of `key`: `KEY.flv` (which may not exist yet), or with `record_unique` the newest
    /// `KEY-UNIXTIME.flv` (panics if there is none yet).
    pub fn recording(&self, key: &str) -> PathBuf {
        if !self.opts.record_unique {
            return self.record_dir.join(format!("{key}.flv"));
        }
        self.recordings_of(key).pop().unwrap_or_else(|| {
            panic!("no recording for key {key:?} in {}; files: {:?}", self.record_dir.display(), self.recordings())
        })
    }

    /// Waits until nginx has finished `path`: it exists, no nginx process holds it open, and its size
    /// has not moved for a moment. nginx closes the file when the publisher goes away (or on kill).
    pub fn wait_recording_closed(&self, path: &Path, timeout: Duration) {
        let mut last: Option<(u64, Instant)> = None;
        let what = format!("nginx to finish recording {}", path.display());
        wait_until(timeout, &what, || {
            let Ok(size) = fs::metadata(path).map(|m| m.len()) else {
                return false;
            };
            if self.file_held(path) {
                last = None;
                return false;
            }
            match last {
                Some((s, since)) if s == size => since.elapsed() >= SIZE_STABLE_FOR,
                _ => {
                    last = Some((size, Instant::now()));
                    false
                }
            }
        });
    }

    /// SIGKILL to the master and its workers (they share the process group we gave the master), then
    /// waits until they are gone and the port is closed. Simulates a server crash.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as i32;
        // SAFETY: plain syscall on a process group we created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
        self.wait_gone(pgid);
    }

    /// Graceful shutdown (SIGQUIT). `worker_shutdown_timeout` in the config bounds how long workers
    /// keep live RTMP connections; if they still linger, they are killed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as i32;
        // SAFETY: signal to our own child.
        unsafe { libc::kill(pgid, libc::SIGQUIT) };
        let start = Instant::now();
        while start.elapsed() < STOP_DEADLINE {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !matches!(child.try_wait(), Ok(Some(_))) {
            eprintln!("nginx did not quit within {STOP_DEADLINE:?} of SIGQUIT; killing it");
        }
        // SAFETY: as in kill(); also reaps workers that outlived a graceful master.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
        self.wait_gone(pgid);
    }

    /// Kills nginx (if running) and starts it again on the same port with the same record directory,
    /// as a crashed-and-restarted ingest server looks to a publisher.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("nginx failed to restart on port {}:\n{e}", self.port);
        }
    }

    fn config(&self, module: Option<&Path>) -> String {
        let mut c = String::new();
        if let Some(m) = module {
            c += &format!("load_module {};\n", m.display());
        }
        c += "daemon off;\nmaster_process on;\nworker_processes 1;\n";
        // SAFETY: geteuid has no failure mode.
        if unsafe { libc::geteuid() } == 0 {
            c += "user root;\n";
        }
        c += &format!("pid {};\n", self.dir.join("nginx.pid").display());
        // `info` so the readiness check can see "start worker process".
        c += &format!("error_log {} info;\n", self.error_log.display());
        c += "worker_shutdown_timeout 3s;\n";
        c += "events { worker_connections 256; }\n";
        let publish = if self.opts.deny_publish {
            "deny publish all;"
        } else {
            "allow publish 127.0.0.1;\n            deny publish all;"
        };
        c += &format!(
            r#"rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application {app} {{
            live on;
            record all;
            record_path {rec};
            record_unique {unique};
            {publish}
            allow play all;
        }}
    }}
}}
"#,
            port = self.port,
            app = self.opts.app,
            rec = self.record_dir.display(),
            unique = if self.opts.record_unique { "on" } else { "off" },
        );
        c
    }

    /// Starts the master and waits until it has bound the port and forked its worker. A bare "port
    /// accepts TCP" check is not enough: on a race for the port it could be someone else listening.
    fn spawn(&mut self) -> Result<(), String> {
        let log_offset = fs::metadata(&self.error_log).map(|m| m.len()).unwrap_or(0);
        let console = fs::File::create(self.dir.join("console.log")).expect("create console.log");
        let child = Command::new(&self.nginx_bin)
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(&self.error_log)
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("dup console.log"))
            .stderr(console)
            // Workers are separate processes; a group of their own lets kill() reach all of them.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.nginx_bin.display()))?;
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let log = self.error_log();
            let new_log = log.get(log_offset as usize..).unwrap_or(&log);
            let exited = match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            if let Some(status) = exited {
                self.child = None;
                let console = fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
                return Err(format!(
                    "nginx exited ({status})\n--- error.log ---\n{new_log}\n--- console ---\n{console}"
                ));
            }
            if new_log.contains("start worker process") && port_open(self.port) {
                return Ok(());
            }
            if start.elapsed() > START_DEADLINE {
                self.kill();
                return Err(format!(
                    "nginx not accepting on port {} after {START_DEADLINE:?}\n--- error.log ---\n{new_log}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_gone(&self, pgid: i32) {
        wait_until(Duration::from_secs(5), "nginx processes to exit", || group_pids(pgid).is_empty());
        let port = self.port;
        wait_until(Duration::from_secs(5), "nginx port to close", || !port_open(port));
    }

    fn file_held(&self, path: &Path) -> bool {
        let Some(pgid) = self.child.as_ref().map(|c| c.id() as i32) else {
            return false;
        };
        let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        group_pids(pgid).into_iter().any(|pid| {
            fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|rd| rd.filter_map(|e| e.ok()).any(|e| fs::read_link(e.path()).is_ok_and(|l| l == target)))
                .unwrap_or(false)
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.error_log();
            let tail: Vec<&str> = log.lines().filter(|l| !l.contains("[info]") && !l.contains("[notice]")).collect();
            let from = tail.len().saturating_sub(30);
            eprintln!(
                "--- nginx on port {} ({}), warnings and errors ---\n{}",
                self.port,
                self.dir.display(),
                tail[from..].join("\n")
            );
        }
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            // SAFETY: as in kill().
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
        if std::env::var_os("KP_KEEP_TMP").is_some() {
            eprintln!("KP_KEEP_TMP: keeping {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Live (non-zombie) processes in a process group, from /proc.
fn group_pids(pgid: i32) -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // The command name may contain spaces and parentheses; fields resume after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2].parse() == Ok(pgid)
        })
        .collect()
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// Where the rtmp module lives, or None when it is compiled into nginx.
fn rtmp_module(nginx: &Path) -> Option<PathBuf> {
    let out = Command::new(nginx).arg("-V").output().expect("run nginx -V");
    let build = String::from_utf8_lossy(&out.stderr).into_owned();
    if build.contains("nginx-rtmp-module") && !build.contains("=dynamic") {
        return None;
    }
    let prefix =
        build.split_whitespace().find_map(|a| a.strip_prefix("--prefix=")).unwrap_or("/usr/share/nginx").to_string();
    let mut candidates: Vec<PathBuf> =
        ["/usr/lib/nginx/modules", "/usr/lib64/nginx/modules", "/usr/share/nginx/modules", "/usr/local/nginx/modules"]
            .iter()
            .map(|d| Path::new(d).join("ngx_rtmp_module.so"))
            .collect();
    // Debian's snippet says `load_module modules/ngx_rtmp_module.so;`, relative to nginx's prefix.
    for snippet_dir in ["/usr/share/nginx/modules-available", "/etc/nginx/modules-enabled"] {
        for entry in fs::read_dir(snippet_dir).into_iter().flatten().flatten() {
            let Ok(text) = fs::read_to_string(entry.path()) else {
                continue;
            };
            for line in text.lines() {
                if let Some(rest) = line.trim().strip_prefix("load_module") {
                    let p = rest.trim().trim_end_matches(';').trim();
                    if p.contains("rtmp") {
                        candidates.push(Path::new(&prefix).join(p));
                    }
                }
            }
        }
    }
    candidates.iter().find(|p| p.is_file()).cloned().map(Some).unwrap_or_else(|| {
        panic!(
            "nginx rtmp module not found (looked at {candidates:?}); install libnginx-mod-rtmp: \
                 run scripts/test, which installs it"
        )
    })
}
