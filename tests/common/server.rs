//! A gpuworker server subcommand on a loopback port of its own choosing, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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

/// Starts `gpuworker <args> --listen 127.0.0.1:0` and returns once it has said where it
/// listens ("... listening on http://ADDR" on stderr). The server binds the port itself, so
/// tests running side by side can never be handed each other's port.
pub fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = Vec::new();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) => match line.split_once("listening on ") {
                Some((_, url)) => break url.trim().to_string(),
                None => said.push(line),
            },
            _ => panic!(
                "gpuworker {args:?} exited before listening: {:?}\n{}",
                child.wait(),
                said.join("\n")
            ),
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, base }
}
