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
        self.next_cursor = page.next_cursor;
        self.total = page.total;
        self.loading = false;
        self.loaded = true;
        self.error = None;
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

    /// Whether the next page should be asked for now.
    pub fn wants_next_page(&self) -> bool {
        !self.loading && self.next_cursor.is_some() && self.selected + PREFETCH_ROWS >= self.items.len()
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

    /// Selects the last loaded row; with cursor paging the true end is reached by
    /// loading the pages in between, which `wants_next_page` then asks for.
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
