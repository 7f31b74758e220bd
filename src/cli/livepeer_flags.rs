//! `gpuworker -transcoder -orchAddr=... -orchSecret=...`: go-livepeer's command line, so an
//! operator replaces `livepeer` with `gpuworker` in a compose file or unit and changes nothing
//! else. Parsed as Go's `flag` package and peterbourgon/ff parse it (cmd/livepeer/livepeer.go):
//! `-flag value`, `-flag=value`, `--flag`, boolean flags bare or `=true|false`, a `--` ends
//! the flags; then `LP_<FLAGNAME>` environment variables, then a `-config` file of
//! `name value` lines, each filling only what the command line left unset. Every flag of
//! go-livepeer 0.9.1 (cmd/livepeer/starter/flags.go) is accepted: those that mean something
//! to a transcoder are used, the rest get a one-line notice. An unknown flag is Go's error.

use super::network::{TranscoderArgs, WorkerArgs};
use gpuworker::net::capabilities::LIVEPEER_VERSION;
use std::collections::BTreeMap;
use std::ffi::OsString;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Value,
}
use Kind::{Bool, Value};

/// go-livepeer's flags (flags.go, plus `-v`, `-version`, `-j`, `-config` of livepeer.go) and
/// `-livepeerVersion`, gpuworker's own: the version reported to the orchestrator.
const FLAGS: &[(&str, Kind)] = &[
    ("network", Value),
    ("rtmpAddr", Value),
    ("cliAddr", Value),
    ("httpAddr", Value),
    ("serviceAddr", Value),
    ("nodes", Value),
    ("verifierUrl", Value),
    ("verifierPath", Value),
    ("localVerify", Bool),
    ("httpIngest", Bool),
    ("orchAddr", Value),
    ("orchWebhookUrl", Value),
    ("extraNodes", Value),
    ("orchBlocklist", Value),
    ("orchMinLivepeerVersion", Value),
    ("selectRandFreq", Value),
    ("selectStakeWeight", Value),
    ("selectPriceWeight", Value),
    ("selectPriceExpFactor", Value),
    ("orchPerfStatsUrl", Value),
    ("region", Value),
    ("maxPricePerUnit", Value),
    ("maxPricePerCapability", Value),
    ("ignoreMaxPriceIfNeeded", Bool),
    ("minPerfScore", Value),
    ("discoveryTimeout", Value),
    ("gatewayHost", Value),
    ("orchestrator", Bool),
    ("transcoder", Bool),
    ("gateway", Bool),
    ("broadcaster", Bool),
    ("orchSecret", Value),
    ("transcodingOptions", Value),
    ("maxAttempts", Value),
    ("maxSessions", Value),
    ("currentManifest", Bool),
    ("nvidia", Value),
    ("netint", Value),
    ("testTranscoder", Bool),
    ("hevcDecoding", Bool),
    ("aiServiceRegistry", Bool),
    ("aiWorker", Bool),
    ("aiServerless", Bool),
    ("useLiveRunners", Bool),
    ("liveRunnerConfig", Value),
    ("liveRunnerProxyUrl", Value),
    ("aiModels", Value),
    ("aiModelsDir", Value),
    ("aiRunnerImage", Value),
    ("aiVerboseLogs", Bool),
    ("aiRunnerImageOverrides", Value),
    ("aiProcessingRetryTimeout", Value),
    ("aiRunnerContainersPerGPU", Value),
    ("aiMinRunnerVersion", Value),
    ("mediaMTXApiPassword", Value),
    ("liveRunnerAddr", Value),
    ("liveAITrickleHostForRunner", Value),
    ("liveAIAuthApiKey", Value),
    ("liveAIHeartbeatURL", Value),
    ("liveAIHeartbeatHeaders", Value),
    ("liveAIHeartbeatInterval", Value),
    ("liveAIAuthWebhookUrl", Value),
    ("livePaymentInterval", Value),
    ("liveOutSegmentTimeout", Value),
    ("liveAISaveNSegments", Value),
    ("liveAICapRefreshModels", Value),
    ("liveAICapReportInterval", Value),
    ("ethAcctAddr", Value),
    ("ethPassword", Value),
    ("ethKeystorePath", Value),
    ("ethOrchAddr", Value),
    ("ethUrl", Value),
    ("transactionTimeout", Value),
    ("maxTransactionReplacements", Value),
    ("gasLimit", Value),
    ("minGasPrice", Value),
    ("maxGasPrice", Value),
    ("ethController", Value),
    ("initializeRound", Bool),
    ("initializeRoundMaxDelay", Value),
    ("ticketEV", Value),
    ("maxFaceValue", Value),
    ("maxTicketEV", Value),
    ("maxTotalEV", Value),
    ("depositMultiplier", Value),
    ("pricePerUnit", Value),
    ("pixelsPerUnit", Value),
    ("priceFeedAddr", Value),
    ("autoAdjustPrice", Bool),
    ("pricePerGateway", Value),
    ("pricePerBroadcaster", Value),
    ("blockPollingInterval", Value),
    ("redeemer", Bool),
    ("redeemerAddr", Value),
    ("reward", Bool),
    ("monitor", Bool),
    ("metricsPerStream", Bool),
    ("metricsClientIP", Bool),
    ("metadataQueueUri", Value),
    ("metadataAmqpExchange", Value),
    ("metadataPublishTimeout", Value),
    ("datadir", Value),
    ("dataDir", Value),
    ("objectStore", Value),
    ("recordStore", Value),
    ("FVfailGsbucket", Value),
    ("FVfailGskey", Value),
    ("authWebhookUrl", Value),
    ("startupAvailabilityCheck", Bool),
    ("remoteSigner", Bool),
    ("remoteSignerUrl", Value),
    ("remoteSignerHeaders", Value),
    ("remoteSignerWebhookUrl", Value),
    ("remoteSignerWebhookHeaders", Value),
    ("remoteSignerAllowNoAuth", Bool),
    ("remoteDiscovery", Bool),
    ("kafkaBootstrapServers", Value),
    ("kafkaUser", Value),
    ("kafkaPassword", Value),
    ("kafkaGatewayTopic", Value),
    ("v", Value),
    ("version", Bool),
    ("j", Bool),
    ("config", Value),
    ("livepeerVersion", Value),
];

/// Flags a transcoder uses; every other one is accepted with a notice.
const USED: &[&str] = &[
    "transcoder",
    "orchAddr",
    "orchSecret",
    "maxSessions",
    "nvidia",
    "testTranscoder",
    "hevcDecoding",
    "monitor",
    "cliAddr",
    "v",
    "datadir",
    "dataDir",
    "config",
    "version",
    "livepeerVersion",
];

/// Roles go-livepeer has and gpuworker does not take through these flags.
const OTHER_ROLES: &[&str] = &[
    "orchestrator",
    "gateway",
    "broadcaster",
    "aiWorker",
    "redeemer",
    "reward",
    "remoteSigner",
    "initializeRound",
];

/// The transcoder's CLI port (go-livepeer `TranscoderCliPort`, starter.go:77).
const TRANSCODER_CLI: &str = "127.0.0.1:6935";

/// What the command line asks for.
pub enum Parsed {
    /// Run the transcoder; `verbosity` is glog's `-v`.
    Run {
        args: Box<TranscoderArgs>,
        verbosity: u32,
    },
    /// Print `text` (to stdout if `code` is 0, else stderr) and exit with `code`.
    Exit { code: i32, text: String },
}

/// Whether `argv` is go-livepeer's command line: its first argument is one of its flags
/// (gpuworker's own subcommands never start with `-`; `--help` and `--version` stay ours).
pub fn is_livepeer_style(argv: &[OsString]) -> bool {
    let Some(first) = argv.get(1).and_then(|a| a.to_str()) else {
        return false;
    };
    if matches!(first, "--help" | "-h" | "--version" | "-V") {
        return false;
    }
    first.starts_with('-') && kind(flag_name(first).0).is_some()
}

fn kind(name: &str) -> Option<Kind> {
    FLAGS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// `-name=value` or `--name` → (name, inline value).
fn flag_name(arg: &str) -> (&str, Option<&str>) {
    let s = arg
        .strip_prefix("--")
        .or(arg.strip_prefix('-'))
        .unwrap_or(arg);
    match s.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    }
}

fn usage() -> String {
    let mut u = String::from(
        "Usage of gpuworker (go-livepeer's flags; gpuworker runs the -transcoder role):\n",
    );
    for (name, _) in FLAGS {
        let note = if USED.contains(name) {
            ""
        } else {
            "  (accepted, not used)"
        };
        u.push_str(&format!("  -{name}{note}\n"));
    }
    u.push_str("\ngpuworker's own command line: gpuworker --help\n");
    u
}

fn go_bool(name: &str, v: &str) -> Result<bool, String> {
    // Go's strconv.ParseBool.
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "invalid boolean value {v:?} for -{name}: parse error"
        )),
    }
}

/// Go's `flag.Parse` over `args` (without the program name): the values set, by flag name.
fn parse_flags(args: &[String]) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let mut set = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return Ok((set, args[i + 1..].to_vec()));
        }
        if !a.starts_with('-') || a == "-" {
            return Ok((set, args[i..].to_vec()));
        }
        let (name, inline) = flag_name(a);
        if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
            return Err(format!("bad flag syntax: {a}"));
        }
        if name == "help" || name == "h" {
            return Err(String::new());
        }
        let value = match (kind(name), inline) {
            (None, _) => return Err(format!("flag provided but not defined: -{name}")),
            (Some(Bool), Some(v)) => go_bool(name, v)?.to_string(),
            (Some(Bool), None) => "true".to_string(),
            (Some(Value), Some(v)) => v.to_string(),
            (Some(Value), None) => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| format!("flag needs an argument: -{name}"))?
            }
        };
        set.insert(name.to_string(), value);
        i += 1;
    }
    Ok((set, Vec::new()))
}

/// ff's PlainParser: `name value` per line (`#` comments, blank lines), `name` alone for a
/// boolean set to true.
fn parse_config(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once(char::is_whitespace) {
            Some((n, v)) => (n.trim_start_matches('-'), v.trim()),
            None => (line.trim_start_matches('-'), "true"),
        };
        match kind(name) {
            None => return Err(format!("config file flag {name:?} not defined in flag set")),
            Some(Bool) => out.push((name.to_string(), go_bool(name, value)?.to_string())),
            Some(Value) => out.push((name.to_string(), value.to_string())),
        }
    }
    Ok(out)
}

/// The whole command line, environment and config file, as go-livepeer reads them.
pub fn parse(argv: &[OsString], env: &BTreeMap<String, String>) -> Parsed {
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (mut set, rest) = match parse_flags(&args) {
        Ok(x) => x,
        Err(e) if e.is_empty() => {
            return Parsed::Exit {
                code: 0,
                text: usage(),
            }
        }
        Err(e) => {
            return Parsed::Exit {
                code: 2,
                text: format!("{e}\n{}", usage()),
            }
        }
    };
    // ff: environment (LP_ + the flag name in upper case), then the config file, for what
    // the command line did not set.
    for (name, k) in FLAGS {
        let var = format!("LP_{}", name.to_uppercase());
        if let (false, Some(v)) = (set.contains_key(*name), env.get(&var)) {
            let v = match k {
                Bool => match go_bool(name, v) {
                    Ok(b) => b.to_string(),
                    Err(e) => return Parsed::Exit { code: 2, text: e },
                },
                Value => v.clone(),
            };
            set.insert(name.to_string(), v);
        }
    }
    if let Some(path) = set.get("config").cloned().filter(|p| !p.is_empty()) {
        let entries = std::fs::read_to_string(&path)
            .map_err(|e| format!("-config {path}: {e}"))
            .and_then(|t| parse_config(&t));
        match entries {
            Ok(entries) => {
                for (n, v) in entries {
                    set.entry(n).or_insert(v);
                }
            }
            Err(e) => {
                return Parsed::Exit {
                    code: 1,
                    text: format!("Error parsing config: {e}"),
                }
            }
        }
    }
    if set.get("version").is_some_and(|v| v == "true") {
        let version = set
            .get("livepeerVersion")
            .map_or(LIVEPEER_VERSION, String::as_str);
        return Parsed::Exit {
            code: 0,
            text: format!(
                "Livepeer Node Version: {version}\ngpuworker version: {}\nArchitecture: {}\nOperating system: {}\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::consts::OS
            ),
        };
    }
    match build(&set, &rest) {
        Ok(p) => p,
        Err(text) => Parsed::Exit { code: 1, text },
    }
}

fn build(set: &BTreeMap<String, String>, rest: &[String]) -> Result<Parsed, String> {
    let on = |n: &str| set.get(n).is_some_and(|v| v == "true");
    let get = |n: &str| set.get(n).cloned().filter(|v| !v.is_empty());
    if let Some(role) = OTHER_ROLES.iter().find(|r| on(r)) {
        return Err(format!(
            "-{role}: gpuworker runs go-livepeer's transcoder role (-transcoder); run go-livepeer for -{role}"
        ));
    }
    if !on("transcoder") {
        return Err(
            "No services enabled; gpuworker's go-livepeer command line runs -transcoder".into(),
        );
    }
    if get("netint").is_some() {
        return Err("-netint: NetInt devices are not supported by gpuworker".into());
    }
    let mut notices = Vec::new();
    for name in set.keys().filter(|n| !USED.contains(&n.as_str())) {
        notices.push(match name.as_str() {
            "ethOrchAddr" => {
                "-ethOrchAddr is not used by a remote transcoder (the orchestrator uses it)".into()
            }
            _ => format!("-{name} is not used by a transcoder (accepted)"),
        });
    }
    if !rest.is_empty() {
        notices.push(format!(
            "ignoring arguments after the flags: {}",
            rest.join(" ")
        ));
    }
    for n in notices {
        eprintln!("notice: {n}");
    }
    let max_sessions = match get("maxSessions")
        .as_deref()
        .unwrap_or("10")
        .parse::<usize>()
    {
        Ok(n) if n > 0 => n,
        _ => return Err("-maxSessions must be 'auto' or greater than zero".into()),
    };
    let orch_secret = get("orchSecret").ok_or("Missing -orchSecret")?;
    let orch_addr = get("orchAddr").ok_or("Missing -orchAddr")?;
    let verbosity = match get("v") {
        None => 3,
        Some(v) => v
            .parse()
            .map_err(|_| format!("invalid value {v:?} for flag -v: parse error"))?,
    };
    let hevc_decoding = match get("hevcDecoding") {
        None => None,
        Some(v) => Some(go_bool("hevcDecoding", &v)?),
    };
    let monitor = on("monitor");
    let cli_addr = get("cliAddr").map(|a| default_addr(&a, "6935"));
    let metrics_addr = match (monitor, cli_addr) {
        (false, _) => None,
        (true, a) => {
            let a = a.unwrap_or_else(|| TRANSCODER_CLI.to_string());
            Some(
                a.parse()
                    .map_err(|e| format!("-cliAddr {a}: not a host:port address ({e})"))?,
            )
        }
    };
    let mut worker = WorkerArgs::defaults();
    worker.nvidia = get("nvidia");
    if let Some(d) = get("dataDir").or_else(|| get("datadir")) {
        worker.work_dir = d.into();
    }
    Ok(Parsed::Run {
        args: Box::new(TranscoderArgs {
            orch_addr,
            orch_secret,
            max_sessions,
            orch_cert: None,
            metrics_addr,
            test_transcoder: set.get("testTranscoder").is_none_or(|v| v == "true"),
            hevc_decoding,
            livepeer_version: get("livepeerVersion").unwrap_or_else(|| LIVEPEER_VERSION.into()),
            worker,
        }),
        verbosity,
    })
}

/// go-livepeer's `defaultAddr` for the CLI address: `:p` → 127.0.0.1:p, a bare host gets
/// the default port.
fn default_addr(addr: &str, port: &str) -> String {
    if let Some(p) = addr.strip_prefix(':') {
        format!("127.0.0.1:{p}")
    } else if !addr.contains(':') {
        format!("{addr}:{port}")
    } else {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<OsString> {
        std::iter::once("gpuworker")
            .chain(s.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn run(s: &[&str]) -> (TranscoderArgs, u32) {
        match parse(&argv(s), &BTreeMap::new()) {
            Parsed::Run { args, verbosity } => (*args, verbosity),
            Parsed::Exit { code, text } => panic!("exit {code}: {text}"),
        }
    }

    fn exit(s: &[&str]) -> (i32, String) {
        match parse(&argv(s), &BTreeMap::new()) {
            Parsed::Exit { code, text } => (code, text),
            Parsed::Run { .. } => panic!("ran"),
        }
    }

    #[test]
    fn go_flag_syntax_in_all_its_forms() {
        assert!(is_livepeer_style(&argv(&["-transcoder"])));
        assert!(is_livepeer_style(&argv(&["--orchAddr=x"])));
        assert!(!is_livepeer_style(&argv(&["transcoder"])));
        assert!(!is_livepeer_style(&argv(&["--help"])));
        let (a, v) = run(&[
            "-transcoder",
            "-orchAddr=o.example",
            "--orchSecret",
            "s",
            "-maxSessions",
            "3",
            "-nvidia=0,1",
            "-v=6",
            "-testTranscoder=false",
            "-hevcDecoding=true",
        ]);
        assert_eq!(a.orch_addr, "o.example");
        assert_eq!(a.orch_secret, "s");
        assert_eq!(a.max_sessions, 3);
        assert_eq!(a.worker.nvidia.as_deref(), Some("0,1"));
        assert_eq!(v, 6);
        assert!(!a.test_transcoder);
        assert_eq!(a.hevc_decoding, Some(true));
        assert_eq!(a.livepeer_version, LIVEPEER_VERSION);
        assert_eq!(a.metrics_addr, None);
        let (a, _) = run(&[
            "-transcoder",
            "-orchAddr",
            "o",
            "-orchSecret",
            "s",
            "-monitor",
        ]);
        assert_eq!(a.metrics_addr, Some("127.0.0.1:6935".parse().unwrap()));
        assert_eq!(a.max_sessions, 10);
        let (a, _) = run(&[
            "-transcoder",
            "-orchAddr",
            "o",
            "-orchSecret",
            "s",
            "-monitor",
            "-cliAddr",
            ":7935",
            "-datadir",
            "/tmp/lp",
            "-network",
            "offchain",
            "-livepeerVersion",
            "0.9.2",
        ]);
        assert_eq!(a.metrics_addr, Some("127.0.0.1:7935".parse().unwrap()));
        assert_eq!(a.worker.work_dir, std::path::PathBuf::from("/tmp/lp"));
        assert_eq!(a.livepeer_version, "0.9.2");
    }

    #[test]
    fn go_errors_and_exits() {
        let (code, text) = exit(&["-transcoder", "-bogus"]);
        assert_eq!(code, 2);
        assert!(
            text.starts_with("flag provided but not defined: -bogus"),
            "{text}"
        );
        assert_eq!(
            exit(&["-transcoder", "-orchAddr", "o"]).1,
            "Missing -orchSecret"
        );
        assert_eq!(
            exit(&["-transcoder", "-orchSecret", "s"]).1,
            "Missing -orchAddr"
        );
        assert_eq!(
            exit(&[
                "-transcoder",
                "-orchAddr",
                "o",
                "-orchSecret",
                "s",
                "-maxSessions",
                "auto"
            ])
            .1,
            "-maxSessions must be 'auto' or greater than zero"
        );
        assert!(exit(&["-orchestrator", "-transcoder"])
            .1
            .contains("-orchestrator"));
        assert!(exit(&["-transcoder", "-monitor=maybe"])
            .1
            .contains("invalid boolean"));
        assert!(exit(&["-transcoder", "-orchAddr"])
            .1
            .contains("flag needs an argument"));
        let (code, text) = exit(&["-version", "-livepeerVersion", "1.2.3"]);
        assert_eq!(code, 0);
        assert!(text.starts_with("Livepeer Node Version: 1.2.3"));
        assert_eq!(exit(&["-help"]).0, 0);
    }

    #[test]
    fn environment_then_config_fill_what_flags_leave() {
        let dir = std::env::temp_dir().join(format!("lpcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("t.conf");
        std::fs::write(
            &cfg,
            "# comment\ntranscoder\norchSecret fromfile\nmaxSessions 7\n",
        )
        .unwrap();
        let env: BTreeMap<String, String> = [
            ("LP_ORCHADDR".to_string(), "env.example".to_string()),
            ("LP_MAXSESSIONS".to_string(), "5".to_string()),
        ]
        .into();
        let p = parse(&argv(&["-config", cfg.to_str().unwrap()]), &env);
        let Parsed::Run { args, .. } = p else {
            panic!()
        };
        assert_eq!(args.orch_addr, "env.example");
        assert_eq!(args.orch_secret, "fromfile");
        assert_eq!(args.max_sessions, 5); // the environment wins over the file
        std::fs::write(&cfg, "unknownFlag 1\n").unwrap();
        assert!(matches!(
            parse(&argv(&["-config", cfg.to_str().unwrap()]), &BTreeMap::new()),
            Parsed::Exit { code: 1, .. }
        ));
    }
}
