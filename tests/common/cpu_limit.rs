//! An emulated low-end CPU: a cgroup v1 `cpu` group limited to a fraction of one core, into which
//! single threads move by their TID (the pusher's encode thread, or an FFmpeg process).
//!
//! The period is 20 ms rather than the default 100 ms: with 100 ms a thread whose frame fits in
//! the quota runs at full speed and then sleeps 90 ms — a bursty CPU, not a slow one — and wall
//! time per frame then says nothing about the share until the quota is exceeded. At 20 ms a frame
//! of work is spread over several periods, as it would be on a slower core. (The kernel's
//! smallest quota is 1 ms: 5 % of a 20 ms period.)

use std::path::{Path, PathBuf};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup/cpu";
pub const PERIOD_US: u32 = 20_000;

/// A cgroup v1 cpu group, removed on drop (its threads moved back to the root group first), also
/// when the test panics.
pub struct CpuLimit {
    dir: PathBuf,
}

impl CpuLimit {
    /// None (after a loud message) when the cgroup v1 cpu controller is not writable here.
    pub fn new(name: &str) -> Option<CpuLimit> {
        let dir = Path::new(CGROUP_ROOT).join(format!("kp-{name}-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&dir) {
            eprintln!(
                "\n!!!!! SKIPPED: cannot create {} ({e}): the encode-ladder test needs a writable cgroup v1 \
                 cpu controller (run as root) !!!!!\n",
                dir.display()
            );
            return None;
        }
        let limit = CpuLimit { dir };
        limit.write("cpu.cfs_period_us", &PERIOD_US.to_string());
        Some(limit)
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {value} to {}: {e}", path.display()));
    }

    /// `percent` of one core; None lifts the limit.
    pub fn set(&self, percent: Option<u32>) {
        let quota = percent.map_or(-1, |p| i64::from(PERIOD_US * p / 100));
        self.write("cpu.cfs_quota_us", &quota.to_string());
    }

    pub fn add_thread(&self, tid: u32) {
        self.write("tasks", &tid.to_string());
    }
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        let tasks = std::fs::read_to_string(self.dir.join("tasks")).unwrap_or_default();
        for tid in tasks.split_whitespace() {
            let _ = std::fs::write(Path::new(CGROUP_ROOT).join("tasks"), tid);
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
    }
}

/// The TID of this process's thread named `name` (the pusher names its threads).
pub fn thread_id(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc/self/task").ok()?.filter_map(|e| e.ok()).find_map(|e| {
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == name).then(|| e.file_name().to_str()?.parse().ok()).flatten()
    })
}

/// Moves a whole process (all its threads) into the group.
impl CpuLimit {
    pub fn add_process(&self, pid: u32) {
        self.write("cgroup.procs", &pid.to_string());
    }
}
