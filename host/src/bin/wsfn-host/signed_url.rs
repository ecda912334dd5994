//! `wsfn-host signed-url`: mints a signed connection URL on a running host and prints it, for
//! a backend script or for trying out a function that accepts only signed URLs.

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::json;

use crate::admin_client::{AdminClient, ClientArgs, segment};

#[derive(Args)]
pub struct SignedUrlArgs {
    /// Function name.
    pub name: String,

    /// A query pair the function will see, as NAME=VALUE (repeat for several, in order).
    #[arg(long = "query", value_name = "NAME=VALUE", value_parser = query_pair)]
    pub query: Vec<(String, String)>,

    /// How long the URL is accepted, 1 to 86400 seconds; 300 by default.
    #[arg(long, value_name = "SECONDS")]
    pub ttl_seconds: Option<u64>,

    /// Print only the path and query (`/NAME?...`), to put behind another address.
    #[arg(long)]
    pub path_only: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

fn query_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

pub async fn print(args: SignedUrlArgs) -> Result<()> {
    let mut request = json!({ "query": args.query });
    if let Some(ttl) = args.ttl_seconds {
        request["ttl_seconds"] = json!(ttl);
    }
    let client = AdminClient::new(&args.client)?;
    let signed = client
        .call(
            Method::POST,
            &format!("/v1/functions/{}/signed-url", segment(&args.name)),
            "application/json",
            Bytes::from(request.to_string()),
        )
        .await
        .with_context(|| format!("signing a URL for `{}` failed", args.name))?;
    let field = if args.path_only { "path" } else { "url" };
    let text = signed[field]
        .as_str()
        .filter(|text| !text.is_empty())
        .ok_or_else(|| anyhow!("the admin API answered without a {field}: {signed}"))?;
    println!("{text}");
    Ok(())
}
