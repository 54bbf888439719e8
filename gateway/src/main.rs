//! The `chat-gateway` binary: read configuration, set up logging (and
//! traces, with `OTEL_EXPORTER_OTLP_ENDPOINT`), serve until SIGTERM or
//! Ctrl-C, then drain and flush the traces.

use std::process::ExitCode;

use chat_gateway::{Gateway, GatewayConfig};
use chat_shared::config::Env;

#[tokio::main]
async fn main() -> ExitCode {
    // Read once; every part of the configuration is parsed from this.
    let env = Env::capture();
    let config = match GatewayConfig::from_env(&env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chat-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let common = &config.common;
    let telemetry =
        match chat_shared::telemetry::init(&common.log, common.log_format, "chat-gateway") {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("chat-gateway: {e}");
                return ExitCode::FAILURE;
            }
        };
    for deprecation in env.deprecations() {
        tracing::warn!("{deprecation}");
    }
    let code = serve(config).await;
    telemetry.shutdown().await;
    code
}

async fn serve(config: GatewayConfig) -> ExitCode {
    let gateway = match Gateway::build(config).await {
        Ok(gateway) => gateway,
        Err(e) => {
            tracing::error!(error = %e, "chat-gateway failed to start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %gateway.local_addr(), "chat-gateway listening");
    gateway.run(chat_shared::shutdown::signal()).await;
    ExitCode::SUCCESS
}
