//! Running gpuworker's network commands side by side on loopback: a process whose output is
//! collected, the test orchestrator and the transcoder with the tests' usual arguments.

use super::SMALL_LADDER;
use std::io::{BufRead, BufReader};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gpuworker");

/// A running gpuworker process whose stdout and stderr lines are collected.
pub struct Proc {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

impl Proc {
    pub fn start(args: &[&str]) -> Proc {
        Proc::start_env(args, &[])
    }

    /// [`Proc::start`] with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gpuworker starts");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Proc { child, out, err }
    }

    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().join("\n")
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for stderr, at most `secs`.
    pub fn wait_stderr(&self, secs: u64, pred: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if pred(&self.stderr()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The exit code, waiting at most `secs` (then killed: None).
    pub fn wait(&mut self, secs: u64) -> Option<i32> {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers finish
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn orchestrator(port: u16, input: &Path, out: &Path, extra: &[&str]) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "test-orchestrator",
        "--listen",
        &listen,
        "--secret",
        "s3cret",
        "--profiles",
        SMALL_LADDER,
        "--in",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Proc::start(&args)
}

pub fn transcoder(port: u16, work: &Path, extra: &[&str]) -> Proc {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "transcoder",
        "--orch-addr",
        &addr,
        "--orch-secret",
        "s3cret",
        "--max-sessions",
        "4",
        "--work-dir",
        work.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Proc::start(&args)
}

/// The orchestrator's JSON lines.
pub fn outcomes(p: &Proc) -> Vec<serde_json::Value> {
    p.stdout_lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// An m3u8 playlist over `segs` (1 s each), so that a corrupt file still gets played.
pub fn playlist(dir: &Path, segs: &[PathBuf]) -> PathBuf {
    let mut m = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:1\n");
    for s in segs {
        m += &format!(
            "#EXTINF:1.0,\n{}\n",
            s.file_name().unwrap().to_str().unwrap()
        );
    }
    let p = dir.join("list.m3u8");
    std::fs::write(&p, m).unwrap();
    p
}

pub fn http_get(addr: &str, path: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    s
}
