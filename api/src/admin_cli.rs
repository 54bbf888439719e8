//! The `admin` command of the binaries that own the store (`chat admin …`,
//! `chat-api admin …`): how the first server admin is made, before any
//! admin exists to grant it over the api. It reads the same configuration
//! as the server (`DATABASE_URL`, `CHAT_DATA_DIR`), opens the store
//! (migrating it, as the server would) and changes one account; the
//! change is audited with no actor (the command line).

use std::process::ExitCode;

use chat_shared::admin::ServerRole;
use chat_shared::config::{CommonConfig, Env};
use chat_shared::store::Store;

/// How the command is used, printed on a mistake.
pub const ADMIN_USAGE: &str =
    "usage: admin grant <username> [admin|moderator] | admin revoke <username>";

/// Runs `admin <args>` for `binary` (its name prefixes the one line an
/// error prints): exit 0 with what changed on stdout, 1 with one clear
/// line on stderr otherwise (an unknown user, a bad argument, a store that
/// cannot be opened).
pub async fn admin_command(binary: &str, env: &Env, args: &[String]) -> ExitCode {
    let outcome = async {
        let common = CommonConfig::from_env(env).map_err(|e| e.to_string())?;
        let store = chat_shared::store::connect(&common.database_url(), 1)
            .await
            .map_err(|e| format!("cannot open the store: {e}"))?;
        admin(store.as_ref(), args).await
    };
    match outcome.await {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{binary} admin: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Does what `args` (after `admin`) say to `store`: the line to print, or
/// the one-line error.
pub async fn admin(store: &dyn Store, args: &[String]) -> Result<String, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (role, username) = match args.as_slice() {
        ["grant", username] | ["grant", username, "admin"] => (Some(ServerRole::Admin), *username),
        ["grant", username, "moderator"] => (Some(ServerRole::Moderator), *username),
        ["revoke", username] => (None, *username),
        _ => return Err(ADMIN_USAGE.into()),
    };
    let account = store
        .account_by_name(username)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named {username:?}"))?;
    let name = &account.user.username;
    let result = store.set_server_role(account.user.id, role, None).await;
    match (result, role) {
        (Ok(_), Some(role)) => Ok(format!("{name} is now a server {}", role.as_str())),
        (Ok(_), None) => Ok(format!("{name} no longer holds a server role")),
        (Err(chat_shared::Error::Conflict("unchanged")), Some(role)) => {
            Ok(format!("{name} already is a server {}", role.as_str()))
        }
        (Err(chat_shared::Error::Conflict("unchanged")), None) => {
            Ok(format!("{name} holds no server role"))
        }
        (Err(chat_shared::Error::Conflict("last_admin")), _) => Err(format!(
            "{name} is the last active admin; grant another first"
        )),
        (Err(e), _) => Err(e.to_string()),
    }
}
