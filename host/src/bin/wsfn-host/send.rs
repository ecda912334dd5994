//! `wsfn-host send`: pushes one message from the operator to a connection, or to every member
//! of one of a function's groups, through the admin API.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{ArgGroup, Args};
use hyper::Method;

use crate::admin_client::{AdminClient, ClientArgs, segment};

#[derive(Args)]
#[command(group(ArgGroup::new("to").required(true).args(["connection", "group"])))]
pub struct SendArgs {
    /// The message: a text frame, unless --binary.
    #[arg(value_name = "MESSAGE", required_unless_present = "file")]
    pub message: Option<String>,

    /// The connection to send to (an id as `GET /v1/functions/NAME/connections` lists them).
    #[arg(long, value_name = "ID")]
    pub connection: Option<String>,

    /// The group to publish to, with --function.
    #[arg(long, value_name = "GROUP", requires = "function")]
    pub group: Option<String>,

    /// The function whose group --group names.
    #[arg(long, value_name = "NAME", requires = "group")]
    pub function: Option<String>,

    /// Send this file's bytes instead of MESSAGE, as a binary frame unless --text.
    #[arg(long, value_name = "FILE", conflicts_with = "message")]
    pub file: Option<PathBuf>,

    /// Send MESSAGE as a binary frame.
    #[arg(long, conflicts_with_all = ["text", "file"])]
    pub binary: bool,

    /// Send the file as a text frame (it must be UTF-8).
    #[arg(long, requires = "file")]
    pub text: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";

pub async fn send(args: SendArgs) -> Result<()> {
    let (body, content_type) = match (&args.file, &args.message) {
        (Some(path), _) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            (bytes, if args.text { TEXT } else { BINARY })
        }
        (None, message) => {
            let bytes = message.clone().unwrap_or_default().into_bytes();
            (bytes, if args.binary { BINARY } else { TEXT })
        }
    };
    let (path, to) = match (&args.connection, &args.function, &args.group) {
        (Some(id), _, _) => (
            format!("/v1/connections/{}/send", segment(id)),
            format!("connection {id}"),
        ),
        (None, Some(function), Some(group)) => (
            format!(
                "/v1/functions/{}/groups/{}/send",
                segment(function),
                segment(group)
            ),
            format!("group `{group}` of `{function}`"),
        ),
        // clap requires --connection, or --group with --function.
        _ => anyhow::bail!("say where to send: --connection ID, or --function NAME --group GROUP"),
    };
    let client = AdminClient::new(&args.client)?;
    let delivered = client
        .call(Method::POST, &path, content_type, Bytes::from(body))
        .await
        .with_context(|| format!("sending to {to} failed"))?;
    println!(
        "sent to {to}: delivered to {} connections",
        delivered["delivered"]
    );
    Ok(())
}
