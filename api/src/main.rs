//! The `chat-api` binary: read configuration, set up logging (and traces,
//! with `OTEL_EXPORTER_OTLP_ENDPOINT`), serve until SIGTERM or Ctrl-C, then
//! flush the traces. `chat-api admin grant <username>` instead changes a
//! server role in the store and exits (`admin_cli`).

use std::process::ExitCode;

use chat_api::{ApiConfig, App};
use chat_shared::config::Env;

#[tokio::main]
async fn main() -> ExitCode {
    // Read once; every part of the configuration is parsed from this.
    let env = Env::capture();
    // `chat-api admin grant <username>`: the first admin, from the shell.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("admin") {
        return chat_api::admin_command("chat-api", &env, &args[1..]).await;
    }
    let config = match ApiConfig::from_env(&env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chat-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    let common = &config.common;
    let telemetry = match chat_shared::telemetry::init(&common.log, common.log_format, "chat-api") {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("chat-api: {e}");
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

async fn serve(config: ApiConfig) -> ExitCode {
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "chat-api failed to start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %app.local_addr(), "chat-api listening");
    app.run(chat_shared::shutdown::signal()).await;
    ExitCode::SUCCESS
}
