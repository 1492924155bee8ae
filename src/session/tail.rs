//! A file's last lines, read from its end without reading the rest.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::{read_lines, Line, MAX_TAIL_BYTES};

/// How much is read at a time.
const BLOCK: usize = 64 << 10;

/// Hands out a file's lines from its end, a batch at a time. It scans
/// backwards block by block for where lines start, keeping one block, then
/// reads each batch forward once: every byte is read at most twice however
/// long the lines are, and nothing before the last [`MAX_TAIL_BYTES`].
pub struct Tail<'f> {
    file: &'f mut File,
    len: u64,
    /// The first byte the budget lets us read.
    floor: u64,
    /// The block being scanned, from `block_start`; `block[..unscanned]`
    /// is still to scan.
    block: Vec<u8>,
    block_start: u64,
    unscanned: usize,
    /// Where the lines handed out so far begin.
    start: u64,
    /// Whether no earlier line start is left to find.
    done: bool,
}

impl<'f> Tail<'f> {
    pub fn new(file: &'f mut File) -> io::Result<Tail<'f>> {
        let len = file.metadata()?.len();
        Ok(Tail {
            file,
            len,
            floor: len.saturating_sub(MAX_TAIL_BYTES as u64),
            block: Vec::new(),
            block_start: len,
            unscanned: 0,
            start: len,
            done: len == 0,
        })
    }

    /// Where the lines handed out so far begin.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Up to `n` more lines, those just before the ones handed out, in file
    /// order; none once the file's start (or the budget) is reached. A line
    /// that began before the budget's first byte is left out.
    pub fn earlier(&mut self, n: usize) -> io::Result<Vec<Line>> {
        let end = self.start;
        for _ in 0..n {
            match self.previous_line_start()? {
                Some(at) => self.start = at,
                None => break,
            }
        }
        let mut lines = Vec::new();
        if self.start < end {
            self.file.seek(SeekFrom::Start(self.start))?;
            let batch = (&mut *self.file).take(end - self.start);
            read_lines(BufReader::with_capacity(BLOCK, batch), |_, line| {
                lines.push(line)
            })?;
        }
        Ok(lines)
    }

    /// The start of the line before the last one found, scanning back.
    fn previous_line_start(&mut self) -> io::Result<Option<u64>> {
        loop {
            let scanned = &self.block[..self.unscanned];
            if let Some(i) = scanned.iter().rposition(|&b| b == b'\n') {
                self.unscanned = i;
                let at = self.block_start + i as u64 + 1;
                // The newline that ends the file starts no line.
                if at < self.len {
                    return Ok(Some(at));
                }
                continue;
            }
            self.unscanned = 0;
            if self.done {
                return Ok(None);
            }
            if self.block_start == 0 {
                self.done = true;
                return Ok(Some(0));
            }
            if self.block_start <= self.floor {
                self.done = true;
                return Ok(None);
            }
            let from = self
                .block_start
                .saturating_sub(BLOCK as u64)
                .max(self.floor);
            self.block.resize((self.block_start - from) as usize, 0);
            self.file.seek(SeekFrom::Start(from))?;
            self.file.read_exact(&mut self.block)?;
            self.block_start = from;
            self.unscanned = self.block.len();
        }
    }
}
