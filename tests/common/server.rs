//! A gpuworker server subcommand on a free loopback port, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `gpuworker <args> --listen 127.0.0.1:<free port>` and waits until it accepts.
pub fn start(args: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
        .args(args)
        .args(["--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&listen).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("gpuworker {args:?} exited: {status}");
        }
        assert!(Instant::now() < end, "gpuworker {args:?} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        base: format!("http://{listen}"),
    }
}
