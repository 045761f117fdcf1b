//! A list loaded page by page as the selection moves down it.

use crm_model::Page;

/// When the selection comes this close to the last loaded row, the next page is asked for,
/// so that scrolling rarely waits.
pub const PREFETCH_ROWS: usize = 40;

#[derive(Debug, Clone, PartialEq)]
pub struct PagedList<T> {
    pub items: Vec<T>,
    /// Cursor of the page after the last loaded one; `None` once the end is reached.
    pub next_cursor: Option<String>,
    /// How many items the whole list holds, as the server counts them.
    pub total: u64,
    pub selected: usize,
    /// First row shown: kept so that the selection stays in view.
    pub offset: usize,
    /// A page request is in flight.
    pub loading: bool,
    /// A first page has arrived.
    pub loaded: bool,
    /// Why the last request failed.
    pub error: Option<String>,
    /// The rows are the list's last ones, loaded from its end (in the reverse order, then
    /// turned round): `items[0]` is row `total - items.len() + 1` until the start is reached.
    pub from_end: bool,
}

impl<T> Default for PagedList<T> {
    fn default() -> Self {
        PagedList {
            items: Vec::new(),
            next_cursor: None,
            total: 0,
            selected: 0,
            offset: 0,
            loading: false,
            loaded: false,
            error: None,
            from_end: false,
        }
    }
}

impl<T> PagedList<T> {
    /// An empty list whose first page has been asked for.
    pub fn awaiting_first_page() -> Self {
        PagedList {
            loading: true,
            ..PagedList::default()
        }
    }

    /// Takes in an answer: a first page replaces the rows, a next page extends them.
    pub fn apply_page(&mut self, page: Page<T>, append: bool) {
        if append {
            self.items.extend(page.items);
        } else {
            self.items = page.items;
            self.selected = 0;
            self.offset = 0;
        }
        self.from_end = false;
        self.took_page(page.next_cursor, page.total);
    }

    /// Takes in a page of the list read backwards (the reversed sort): a first one holds
    /// its last rows, the last row selected; the next ones go above, the selection kept.
    pub fn apply_page_from_end(&mut self, page: Page<T>, append: bool) {
        let mut items = page.items;
        items.reverse();
        let added = items.len();
        if append && self.from_end {
            items.append(&mut self.items);
            self.items = items;
            self.selected += added;
            self.offset += added;
        } else {
            self.items = items;
            self.selected = added.saturating_sub(1);
            self.offset = 0;
        }
        self.from_end = true;
        self.took_page(page.next_cursor, page.total);
    }

    fn took_page(&mut self, next_cursor: Option<String>, total: u64) {
        self.next_cursor = next_cursor;
        self.total = total;
        self.loading = false;
        self.loaded = true;
        self.error = None;
    }

    /// Every row is loaded: no page is left in the direction the list is read.
    pub fn is_complete(&self) -> bool {
        self.next_cursor.is_none()
    }

    /// The selected row's number in the whole list, from 1.
    pub fn row_number(&self) -> u64 {
        let before = if self.from_end && !self.is_complete() {
            self.total.saturating_sub(self.items.len() as u64)
        } else {
            0
        };
        before + self.selected as u64 + 1
    }

    pub fn apply_error(&mut self, message: String) {
        self.loading = false;
        self.error = Some(message);
    }

    pub fn selected_item(&self) -> Option<&T> {
        self.items.get(self.selected)
    }

    pub fn selected_item_mut(&mut self) -> Option<&mut T> {
        self.items.get_mut(self.selected)
    }

    /// Whether the next page should be asked for now: the selection nears the last
    /// loaded row (the first one when the rows were loaded from the end).
    pub fn wants_next_page(&self) -> bool {
        let near_the_edge = if self.from_end {
            self.selected < PREFETCH_ROWS
        } else {
            self.selected + PREFETCH_ROWS >= self.items.len()
        };
        !self.loading && self.next_cursor.is_some() && near_the_edge
    }

    /// Moves the selection by `delta` rows within the loaded rows.
    pub fn move_by(&mut self, delta: isize, visible_rows: usize) {
        let last = self.items.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(last);
        self.keep_in_view(visible_rows);
    }

    pub fn select_first(&mut self, visible_rows: usize) {
        self.selected = 0;
        self.keep_in_view(visible_rows);
    }

    /// Selects the last loaded row (the customers table loads the true last rows first,
    /// from the end, when they are not loaded).
    pub fn select_last(&mut self, visible_rows: usize) {
        self.selected = self.items.len().saturating_sub(1);
        self.keep_in_view(visible_rows);
    }

    /// Scrolls so that the selected row is among the `visible_rows` shown.
    pub fn keep_in_view(&mut self, visible_rows: usize) {
        let visible_rows = visible_rows.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + visible_rows {
            self.offset = self.selected + 1 - visible_rows;
        }
        let max_offset = self.items.len().saturating_sub(visible_rows);
        self.offset = self.offset.min(max_offset);
    }

    /// The rows on screen and the selection's index among them.
    pub fn window(&self, visible_rows: usize) -> (&[T], Option<usize>) {
        let start = self.offset.min(self.items.len());
        let end = (start + visible_rows).min(self.items.len());
        let selected = (start..end).contains(&self.selected).then(|| self.selected - start);
        (&self.items[start..end], selected)
    }
}
