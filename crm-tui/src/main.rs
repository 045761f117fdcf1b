use std::process::ExitCode;

use clap::Parser;
use crm_tui::api::ApiClient;
use crm_tui::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match crm_tui::runtime::run(ApiClient::with_token(cli.server, cli.token.as_deref())).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crm-tui: {error}");
            ExitCode::FAILURE
        }
    }
}
