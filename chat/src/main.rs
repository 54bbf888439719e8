//! The `chat` binary: the whole chat system in one process. Reads its
//! configuration, sets up logging (and traces, with
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), prints the address to open, serves until
//! SIGTERM or Ctrl-C, then flushes the traces. `chat admin grant <username>`
//! instead changes a server role in the store and exits (the first admin).

use std::process::ExitCode;

use chat::{Chat, Settings};
use chat_shared::config::Env;

#[tokio::main]
async fn main() -> ExitCode {
    // Read once; the api's and the gateway's parts are parsed from this.
    let env = Env::capture();
    // `chat admin grant <username>`: the first admin, from the shell.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("admin") {
        return chat_api::admin_command("chat", &env, &args[1..]).await;
    }
    let settings = match Settings::from_env(&env) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let common = &settings.api.common;
    let telemetry = match chat_shared::telemetry::init(&common.log, common.log_format, "chat") {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    for deprecation in env.deprecations() {
        tracing::warn!("{deprecation}");
    }
    let code = serve(settings).await;
    telemetry.shutdown().await;
    code
}

async fn serve(settings: Settings) -> ExitCode {
    let chat = match Chat::build(settings).await {
        Ok(chat) => chat,
        Err(e) => {
            tracing::error!(error = %e, "chat failed to start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("chat is running: open http://{}/", chat.local_addr());
    chat.run(chat_shared::shutdown::signal()).await;
    ExitCode::SUCCESS
}
