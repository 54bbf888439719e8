//! The `chat-gateway` binary: read configuration, set up logging (and
//! traces, with `OTEL_EXPORTER_OTLP_ENDPOINT`), serve until SIGTERM or
//! Ctrl-C, then drain and flush the traces.

use std::process::ExitCode;

use chat_gateway::{Gateway, GatewayConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match GatewayConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chat-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry =
        match chat_shared::telemetry::init(&config.log, config.log_format, "chat-gateway") {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("chat-gateway: {e}");
                return ExitCode::FAILURE;
            }
        };
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
