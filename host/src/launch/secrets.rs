//! The host's two secrets: the admin token, and the key signed connection URLs are made with.
//!
//! A token that is neither given nor in a file is generated into the data directory, readable
//! only by its owner, so that the client commands on the same machine find it. That is only
//! allowed while the admin API listens on loopback: anywhere else a token nobody chose would
//! guard an API reachable from other machines.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{Secret, Settings, StartError};
use crate::connections::ConnectionId;
use crate::signing::{SigningKey, UrlSigning};

/// Where a generated admin token is kept, inside the data directory.
pub const GENERATED_TOKEN_FILE: &str = "admin-token";

/// The admin token: the one given, the one in the token file, or the one generated earlier
/// into the data directory (generated now if there is none yet).
pub fn admin_token(settings: &Settings) -> Result<String, StartError> {
    match &settings.admin_token {
        Some(Secret::Value(token)) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        Some(Secret::File(path)) => read_token(path),
        _ => generated_token(settings.admin_listen, &settings.data_dir),
    }
}

fn generated_token(admin_listen: SocketAddr, data_dir: &Path) -> Result<String, StartError> {
    if !admin_listen.ip().is_loopback() {
        return Err(StartError::AdminTokenRequired(admin_listen));
    }
    let path = data_dir.join(GENERATED_TOKEN_FILE);
    if let Ok(token) = read_token(&path) {
        return Ok(token);
    }
    let token = ConnectionId::random().to_string() + &ConnectionId::random().to_string();
    write_private(&path, token.as_bytes()).map_err(|cause| StartError::WriteAdminToken {
        path: path.clone(),
        cause,
    })?;
    tracing::info!("generated an admin token in {}", path.display());
    Ok(token)
}

fn read_token(path: &Path) -> Result<String, StartError> {
    let text = std::fs::read_to_string(path).map_err(|cause| StartError::ReadAdminToken {
        path: path.to_owned(),
        cause,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(StartError::EmptyAdminToken(path.to_owned()));
    }
    Ok(token.to_owned())
}

/// Writes a file only its owner can read; fails if it exists.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The signing policy: the key (given or from its file) and the functions that accept only
/// signed URLs, which need a key.
pub fn url_signing(settings: &Settings) -> Result<UrlSigning, StartError> {
    let required: Vec<String> = settings.signed_only().map(str::to_owned).collect();
    let key = match &settings.signing_key {
        Some(Secret::Value(key)) if !key.trim().is_empty() => key.trim().as_bytes().to_vec(),
        Some(Secret::File(path)) => read_key(path)?,
        _ if required.is_empty() => return Ok(UrlSigning::new(None, required)),
        _ => return Err(StartError::SigningKeyRequired(required.join("`, `"))),
    };
    Ok(UrlSigning::new(Some(SigningKey::new(key)?), required))
}

fn read_key(path: &PathBuf) -> Result<Vec<u8>, StartError> {
    let bytes = std::fs::read(path).map_err(|cause| StartError::ReadSigningKey {
        path: path.clone(),
        cause,
    })?;
    Ok(bytes.trim_ascii().to_vec())
}
