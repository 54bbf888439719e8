//! Structured logging for both binaries: one subscriber, filtered by
//! `CHAT_LOG` (an `EnvFilter` directive), in text or JSON.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;
use crate::error::{Error, Result};

/// Installs the global subscriber. Call once, from `main`.
pub fn init(filter: &str, format: LogFormat) -> Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| Error::Config(format!("CHAT_LOG={filter:?}: {e}")))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| Error::Config(format!("installing the log subscriber: {e}")))
}
