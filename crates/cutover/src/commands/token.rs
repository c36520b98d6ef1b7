//! `cutover token create|ls|revoke`: the API tokens of `cutover serve`. The secret is printed once,
//! at creation; the store keeps only its sha256 (see `cutover_server::tokens`).

use cutover_server::api::types::TokenView;
use cutover_server::tokens::{self, TokenError};
use cutover_store::TokenScope;
use serde_json::json;

use crate::cli::{TokenArgs, TokenCommand};
use crate::context::{Ctx, store_error};
use crate::error::{CliError, Result};

pub fn run(ctx: &Ctx<'_>, args: &TokenArgs) -> Result<()> {
    match &args.command {
        TokenCommand::Create { name, scope, envs } => create(ctx, name, scope, envs),
        TokenCommand::Ls => list(ctx),
        TokenCommand::Revoke { id } => revoke(ctx, *id),
    }
}

fn token_error(e: TokenError) -> CliError {
    match e {
        TokenError::Store(e) if matches!(e, cutover_store::StoreError::Conflict { .. }) => {
            CliError::usage("a token with that name exists")
                .with_cause(e)
                .with_hint(
                    "names are unique: pick another, or revoke the old one (`cutover token ls`)",
                )
        }
        TokenError::Store(e) if matches!(e, cutover_store::StoreError::NotFound { .. }) => {
            CliError::usage(e.to_string()).with_hint("`cutover token ls` lists the tokens")
        }
        TokenError::Store(e) => store_error(e),
        e @ TokenError::BadName { .. } => CliError::usage(e.to_string()),
        e @ TokenError::Random(_) => CliError::internal(e.to_string()),
    }
}

fn create(ctx: &Ctx<'_>, name: &str, scope: &str, envs: &[String]) -> Result<()> {
    let scope = TokenScope::parse(scope).ok_or_else(|| {
        CliError::usage(format!("unknown scope {scope:?}")).with_hint("viewer, deployer or admin")
    })?;
    if !envs.is_empty() {
        let config = ctx.config()?;
        for env in envs {
            super::deploy::check_environment(&config, env)?;
        }
    }
    let store = ctx.store()?;
    let (token, secret) = ctx
        .block_on(tokens::create_token(
            &*store,
            name,
            scope,
            envs,
            &ctx.actor(),
        ))
        .map_err(token_error)?;
    if ctx.global.json {
        let mut doc = serde_json::to_value(TokenView::from(token)).unwrap_or_default();
        doc["secret"] = json!(secret);
        ctx.ui.print_json(&doc);
        return Ok(());
    }
    ctx.ui.status(
        "created",
        format!(
            "token {} `{}` ({}{})",
            token.id,
            token.name,
            token.scope.as_str(),
            if token.environments.is_empty() {
                String::new()
            } else {
                format!(" on {}", token.environments.join(", "))
            }
        ),
    );
    ctx.ui
        .warn("this is the only time the secret is shown; keep it somewhere safe");
    ctx.ui.println(secret);
    Ok(())
}

fn list(ctx: &Ctx<'_>) -> Result<()> {
    let store = ctx.store()?;
    let tokens: Vec<TokenView> = ctx
        .block_on(store.list_api_tokens())
        .map_err(store_error)?
        .into_iter()
        .map(TokenView::from)
        .collect();
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::to_value(&tokens).unwrap_or_default());
        return Ok(());
    }
    if tokens.is_empty() {
        ctx.ui
            .println("no API tokens; `cutover token create --name N --scope viewer` makes one");
        return Ok(());
    }
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
    };
    let mut out = format!(
        "{:<5} {:<24} {:<9} {:<20} {:<16} {:<16} {}\n",
        "ID", "NAME", "SCOPE", "ENVIRONMENTS", "CREATED", "LAST USED", "REVOKED"
    );
    for t in &tokens {
        let envs = if t.environments.is_empty() {
            "all".to_owned()
        } else {
            t.environments.join(",")
        };
        out.push_str(&format!(
            "{:<5} {:<24} {:<9} {:<20} {:<16} {:<16} {}\n",
            t.id,
            t.name,
            t.scope,
            envs,
            fmt(Some(t.created_at)),
            fmt(t.last_used_at),
            fmt(t.revoked_at)
        ));
    }
    ctx.ui.print(out);
    Ok(())
}

fn revoke(ctx: &Ctx<'_>, id: i64) -> Result<()> {
    let store = ctx.store()?;
    let token = ctx
        .block_on(tokens::revoke_token(&*store, id, &ctx.actor()))
        .map_err(|e| match e {
            TokenError::Store(cutover_store::StoreError::Conflict { .. }) => {
                CliError::usage(format!("token {id} is already revoked"))
            }
            e => token_error(e),
        })?;
    if ctx.global.json {
        ctx.ui
            .print_json(&serde_json::to_value(TokenView::from(token)).unwrap_or_default());
        return Ok(());
    }
    ctx.ui
        .status("revoked", format!("token {id} `{}`", token.name));
    Ok(())
}
