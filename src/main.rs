//! `gpuworker`: the command line. Each subcommand lives in `cli/`; go-livepeer's own command
//! line (`gpuworker -transcoder -orchAddr=...`) is read by `cli/livepeer_flags.rs`.

mod cli;

use clap::Parser;

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (command, default_log) = if cli::livepeer_flags::is_livepeer_style(&argv) {
        let env = std::env::vars().collect();
        match cli::livepeer_flags::parse(&argv, &env) {
            cli::livepeer_flags::Parsed::Run { args, verbosity } => (
                cli::Command::Transcoder(*args),
                // glog's -v: 6 and above is go-livepeer's debug level.
                match verbosity {
                    0..=5 => "warn,gpuworker=info",
                    6 => "warn,gpuworker=debug",
                    _ => "info,gpuworker=trace",
                },
            ),
            cli::livepeer_flags::Parsed::Exit { code, text } => {
                if code == 0 {
                    print!("{text}");
                } else {
                    eprintln!("{}", text.trim_end());
                }
                std::process::exit(code);
            }
        }
    } else {
        let cli = cli::Cli::parse();
        let log = cli.command.default_log();
        (cli.command, log)
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GPUWORKER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(cli::Cli { command }) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
