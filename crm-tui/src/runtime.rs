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
use uuid::Uuid;

use crate::api::{ApiClient, ImportRequest, UploadProgress};
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
                SubList::History => Message::HistoryLoaded {
                    id_client,
                    append,
                    result: api.audit(id_client, limit, cursor).await,
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
        Command::Import {
            path,
            mode,
            dry_run,
            skip_invalid,
        } => {
            let request = ImportRequest {
                mode,
                dry_run,
                skip_invalid,
            };
            let upload = api.import_file_with(&path, request, progress_reporter(sender.clone()));
            let mut upload = std::pin::pin!(upload);
            // While the file goes up and the server reads, checks and writes it, the
            // server's own progress is asked for: the upload alone says nothing of
            // the minutes a large import takes once sent.
            let mut ticks = tokio::time::interval(SERVER_PROGRESS_EVERY);
            let result = loop {
                tokio::select! {
                    result = &mut upload => break result,
                    _ = ticks.tick() => {
                        if let Ok(Some(progress)) = api.current_import().await {
                            let _ = sender.send(Message::ServerImportProgress(progress));
                        }
                    }
                }
            };
            Message::ImportAnswered { dry_run, result }
        }
        // The credit answers name the customer and their balance: once the action is
        // done, the customer is read as they now are.
        Command::AllowCredit {
            id_client,
            montant,
            date,
        } => {
            let result = api.allow_credit(id_client, montant, date).await;
            let customer = match result {
                Ok(_) => api.customer(id_client).await.ok(),
                Err(_) => None,
            };
            Message::CreditDecided {
                id_client,
                montant,
                date,
                result,
                customer,
            }
        }
        Command::CreditBalance(key) => {
            let result = api.credit_balance(&key).await;
            let customer = match result {
                Ok(_) => api.customer_by_key(key).await.ok().flatten(),
                Err(_) => None,
            };
            Message::BalanceLoaded { key, result, customer }
        }
        Command::PaymentResult { payment_id, outcome } => {
            let result = api.payment_result(&payment_id, outcome).await;
            let customer = match result.as_ref().map(|payment| Uuid::parse_str(&payment.id_client)) {
                Ok(Ok(id_client)) => api.customer(id_client).await.ok(),
                _ => None,
            };
            Message::PaymentResultRecorded {
                payment_id,
                outcome,
                result,
                customer,
            }
        }
        Command::ResetRefusals(id_client) => Message::RefusalsReset {
            id_client,
            result: api.reset_refusals(id_client).await,
        },
    };
    Some(message)
}

/// How often the server is asked how far its import is.
const SERVER_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

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
