//! The keys of each screen, as the help popup lists them.

use super::{App, Screen};

type Keys = &'static [(&'static str, &'static str)];

const GLOBAL: Keys = &[
    ("Tab / ]", "next screen"),
    ("Shift-Tab / [", "previous screen"),
    ("? / F1", "this help"),
    ("q / Ctrl-C", "quit (asks when input would be lost)"),
];

const LIST: Keys = &[
    ("j k / ↓ ↑", "move"),
    ("g G / Home End", "first / last row (G loads the last ones)"),
    ("PgUp PgDn", "page up / down"),
    ("Enter", "open the customer"),
    ("/", "search (name, e-mail, phone, card, id)"),
    ("Esc", "clear the search"),
    ("s", "next sort order"),
    ("e", "edit the customer"),
    ("c", "issue a loyalty card"),
    ("a", "credit screen for the customer (deferred payment)"),
    ("z", "reset the customer's refusals (asks first)"),
    ("r", "reload"),
];

const SEARCH: Keys = &[
    ("typing", "search as you type"),
    ("↓ ↑", "move in the results"),
    ("Enter", "keep the search, back to the table"),
    ("Esc", "clear the search"),
];

const DETAIL: Keys = &[
    ("h l / ← →", "tickets, ledger, scheduled payments, history"),
    ("j k g G PgUp PgDn", "move in the list"),
    ("e", "edit the customer"),
    ("c", "issue a loyalty card"),
    ("a", "credit screen for the customer (deferred payment)"),
    ("z", "reset the customer's refusals (asks first)"),
    ("r", "reload"),
    ("Esc", "back to the table"),
];

const EDIT: Keys = &[
    ("Enter / i", "type in the selected field"),
    ("j k / ↓ ↑ / Tab", "select a field"),
    ("while typing: ↓ ↑ Tab", "next / previous field"),
    ("while typing: Enter", "next field; on the last one, save"),
    ("while typing: Esc", "stop typing"),
    ("Ctrl-S", "save the changed fields"),
    ("Esc", "cancel (asks when something changed)"),
];

const FORM: Keys = &[
    ("Enter / i", "edit the selected field"),
    ("j k / ↓ ↑", "select a field"),
    ("while editing: ↓ ↑ Tab", "next / previous field"),
    ("while editing: Enter", "next field; on the last one, send"),
    ("while editing: Esc", "stop editing (Tab then changes screen)"),
    ("Ctrl-S", "send"),
    ("Esc", "back to the customers"),
];

const IMPORT: Keys = &[
    ("Enter / i", "type the path of the file"),
    ("while typing: Tab", "complete the path"),
    ("while typing: Enter", "dry run: check the file, write nothing"),
    ("while typing: Esc", "stop typing"),
    ("m", "switch mode merge / replace"),
    ("v", "skip invalid rows (merge): import the valid ones, list the others"),
    ("y / Enter", "after the dry run: import for real"),
    ("n / Esc", "after the dry run: cancel"),
];

const CREDIT: Keys = &[
    ("a on a customer", "opens this screen filled in for them"),
    ("Enter / i", "edit the selected field"),
    ("j k / ↓ ↑", "select a field"),
    ("while editing: Enter", "next field; on an action's last field, send it"),
    ("while editing: Esc", "stop editing"),
    ("Ctrl-S", "send the action of the selected field"),
    ("amounts", "in euros: 360,00 or 360.5"),
];

pub(super) fn entries(app: &App) -> Vec<(&'static str, &'static str)> {
    let customers = &app.customers;
    let screen_keys = match app.screen {
        Screen::Customers if customers.edit.is_some() => EDIT,
        Screen::Customers if customers.searching => SEARCH,
        Screen::Customers if customers.detail.is_some() => DETAIL,
        Screen::Customers => LIST,
        Screen::NewCustomer => FORM,
        Screen::Import => IMPORT,
        Screen::Credit => CREDIT,
    };
    screen_keys.iter().chain(GLOBAL).copied().collect()
}
