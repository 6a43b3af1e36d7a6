//! `queuectl web`: the flags over the config, then the server.

use super::Context;
use super::args::WebArgs;
use queuectl::error::Result;
use queuectl::web::{self, WebOptions};

pub fn run(ctx: &Context, args: WebArgs) -> Result<()> {
    let config = &ctx.config;
    // An auth file on the command line replaces the config's, whichever kind.
    let (token, basic) = if args.auth_token_file.is_some() || args.auth_basic_file.is_some() {
        (args.auth_token_file, args.auth_basic_file)
    } else {
        (
            config.web_auth_token_file.clone(),
            config.web_auth_basic_file.clone(),
        )
    };
    web::serve(WebOptions {
        db: ctx.state.db.clone(),
        durability: config.durability,
        listen: args.listen.unwrap_or(config.web_listen),
        allow_actions: args.allow_actions || config.web_allow_actions,
        auth_token_file: token,
        auth_basic_file: basic,
        insecure_no_auth: args.insecure_no_auth,
        threads: args.threads.into(),
    })
}
