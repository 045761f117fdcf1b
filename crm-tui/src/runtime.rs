//! The event loop: terminal events and answers of the server become [`Message`]s for
//! [`App::update`]; the [`Command`]s it returns run on spawned tasks that send their
//! result back as messages, so drawing and typing never wait on the network.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::api::{ApiClient, UploadProgress};
use crate::app::{App, Command, Message, SubList};
use crate::completion::complete_path;
use crate::ui;

/// Runs the client until the user quits. The terminal is restored on every way out:
/// normal exit, error, and panic (the hook restores it, then ends the process so that
/// no half-dead screen stays behind).
pub async fn run(api: ApiClient) -> io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let restore_then_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_then_panic(info);
        std::process::exit(101);
    }));
    let result = event_loop(&mut terminal, api).await;
    ratatui::restore();
    result
}

async fn event_loop(terminal: &mut DefaultTerminal, api: ApiClient) -> io::Result<()> {
    let (sender, mut receiver) = unbounded_channel();
    let mut app = App::new(api.base_url().as_str().trim_end_matches('/'));
    let executor = Executor { api, sender };
    let size = terminal.size()?;
    app.update(Message::Resize {
        width: size.width,
        height: size.height,
    });
    let start = app.start();
    executor.run_all(start);
    let mut events = EventStream::new();
    loop {
        terminal.draw(|frame| ui::render(&app, frame))?;
        let message = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => Message::Key(key),
                Some(Ok(Event::Resize(width, height))) => Message::Resize { width, height },
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            },
            Some(message) = receiver.recv() => message,
        };
        let mut commands = app.update(message);
        // Take in whatever else arrived before drawing again (upload progress comes fast).
        while let Ok(message) = receiver.try_recv() {
            commands.extend(app.update(message));
        }
        if commands.contains(&Command::Quit) {
            return Ok(());
        }
        executor.run_all(commands);
    }
}

/// Carries out commands on tokio tasks.
struct Executor {
    api: ApiClient,
    sender: UnboundedSender<Message>,
}

impl Executor {
    fn run_all(&self, commands: Vec<Command>) {
        for command in commands {
            let api = self.api.clone();
            let sender = self.sender.clone();
            tokio::spawn(async move {
                if let Some(message) = execute(api, command, sender.clone()).await {
                    // The loop is gone only when quitting: nobody is left to tell.
                    let _ = sender.send(message);
                }
            });
        }
    }
}

/// Runs one command against the server; the message it answers with, if any (none for
/// [`Command::Quit`]). Messages that arrive while it runs (import upload progress) go
/// to `sender`. The event loop and the end-to-end tests both carry out commands here.
pub async fn execute(api: ApiClient, command: Command, sender: UnboundedSender<Message>) -> Option<Message> {
    let message = match command {
        Command::Quit => return None,
        Command::ScheduleSearch { generation, after } => {
            tokio::time::sleep(after).await;
            Message::SearchDue { generation }
        }
        Command::CheckHealth { after } => {
            tokio::time::sleep(after).await;
            Message::HealthChecked(api.health().await)
        }
        Command::LoadCustomers { generation, query } => Message::CustomersLoaded {
            generation,
            append: query.cursor.is_some(),
            result: api.list_customers(&query).await,
        },
        Command::LoadCustomer(id_client) => Message::CustomerLoaded(api.customer(id_client).await),
        Command::LoadSubList {
            id_client,
            list,
            cursor,
        } => {
            let append = cursor.is_some();
            let cursor = cursor.as_deref();
            let limit = crate::app::SUB_LIST_PAGE_SIZE;
            match list {
                SubList::Tickets => Message::TicketsLoaded {
                    id_client,
                    append,
                    result: api.tickets(id_client, limit, cursor).await,
                },
                SubList::Ledger => Message::LedgerLoaded {
                    id_client,
                    append,
                    result: api.ledger(id_client, limit, cursor).await,
                },
                SubList::Payments => Message::PaymentsLoaded {
                    id_client,
                    append,
                    result: api.payments(id_client, limit, cursor).await,
                },
            }
        }
        Command::PatchCustomer { id_client, changes } => {
            Message::CustomerSaved(api.patch_customer(id_client, &changes).await)
        }
        Command::IssueCard(id_client) => Message::CardIssued(api.issue_card(id_client).await),
        Command::CreateCustomer(request) => Message::CustomerCreated(api.create_customer(&request).await),
        Command::CompletePath(typed) => {
            let for_search = typed.clone();
            let candidates = tokio::task::spawn_blocking(move || complete_path(&for_search))
                .await
                .unwrap_or_default();
            Message::PathCompleted { typed, candidates }
        }
        Command::Import { path, mode, dry_run } => {
            let result = api.import_file(&path, mode, dry_run, progress_reporter(sender)).await;
            Message::ImportAnswered { dry_run, result }
        }
        Command::AllowCredit {
            id_client,
            montant,
            date,
        } => Message::CreditDecided(api.allow_credit(id_client, montant, date).await),
        Command::CreditBalance(key) => Message::BalanceLoaded(api.credit_balance(&key).await),
        Command::PaymentResult { payment_id, outcome } => {
            let result = api.payment_result(&payment_id, outcome).await;
            Message::PaymentResultRecorded {
                payment_id,
                outcome,
                result,
            }
        }
        Command::ResetRefusals(id_client) => Message::RefusalsReset {
            id_client,
            result: api.reset_refusals(id_client).await,
        },
    };
    Some(message)
}

/// Passes upload progress on to the screen, once per thousandth of the file at most:
/// a gigabyte in 64 KiB chunks would otherwise be 16,000 redraws.
fn progress_reporter(sender: UnboundedSender<Message>) -> impl Fn(UploadProgress) + Send + Sync + 'static {
    let last_reported = Arc::new(AtomicU64::new(u64::MAX));
    move |progress: UploadProgress| {
        let permille = progress
            .sent
            .saturating_mul(1000)
            .checked_div(progress.total)
            .unwrap_or(1000);
        if last_reported.swap(permille, Ordering::Relaxed) != permille {
            let _ = sender.send(Message::ImportProgress(progress));
        }
    }
}
