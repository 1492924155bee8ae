//! The markdown the bench writes.

/// A markdown table; a heading starting with `>` is right-aligned (numbers).
pub struct Table {
    head: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head
                .iter()
                .map(|h| h.trim_start_matches('>').to_owned())
                .collect(),
            right: head.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.head.len(), "row width: {cells:?}");
        self.rows.push(cells);
    }

    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.head);
        let rule: Vec<String> = self
            .right
            .iter()
            .map(|&r| if r { "---:" } else { "---" }.to_owned())
            .collect();
        out += &line(&rule);
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

/// The report, built section by section.
#[derive(Default)]
pub struct Report {
    text: String,
}

impl Report {
    pub fn heading(&mut self, level: usize, title: &str) {
        self.text += &format!("{} {title}\n\n", "#".repeat(level));
    }

    pub fn para(&mut self, text: &str) {
        self.text += text.trim();
        self.text += "\n\n";
    }

    pub fn table(&mut self, table: &Table) {
        self.text += &table.markdown();
        self.text += "\n";
    }

    pub fn list(&mut self, items: &[(String, String)]) {
        for (name, value) in items {
            self.text += &format!("- {name}: {value}\n");
        }
        self.text += "\n";
    }

    pub fn finish(self) -> String {
        self.text
    }
}
