//! Network front ends: the go-livepeer remote transcoder (`transcoder`), the HTTP API (`serve`),
//! the AI runner-compatible API (`ai_runner`, requests read by `ai_params`) and a test
//! orchestrator that speaks go-livepeer's side of the protocol (`test_orchestrator`),
//! plus what they share: the protocol messages (`proto`), capabilities, profiles from the
//! wire, segment download, result bodies, TLS and metrics.

#[cfg(feature = "diffusion")]
pub mod ai_params;
#[cfg(feature = "diffusion")]
pub mod ai_runner;
pub mod capabilities;
pub mod capability_test;
pub mod download;
pub mod livepeer_metrics;
pub mod lpms_errors;
pub mod metrics;
pub mod profiles;
pub mod proto;
pub mod request_body;
pub mod results;
pub mod serve;
pub mod sessions;
pub mod task;
pub mod test_orchestrator;
pub mod tls;
pub mod transcoder;
