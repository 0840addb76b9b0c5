//! A results document cut into the parts that `-J` writes apart, so that saving a row costs what the row
//! adds: the head (every field before the list that grows), the list's items (each written once, when it
//! has settled, as one compact line), and the rest (the fields after the list, then the run's life last
//! of all), which is rewritten at every save and stays a few hundred bytes while the run goes.
//!
//! The text is what serde_json writes, laid out so that each part sits at a known place:
//!
//! ```text
//! {
//!   "schema_version": 1,              head: pretty, as serde_json writes it
//!   ...
//!   "rows": [
//!     {"collective":"all_reduce",...},  one settled item a line, compact
//!     {"collective":"all_reduce",...}
//!   ],                                 rest: unsettled items, the list's end, the fields after it,
//!   "summary": null,                   then the life, whose text starts at the last
//!   "run_id": "...",                   `\n  "run_id": ` of the file
//!   ...
//!   "heartbeat_unix_s": 1700000000.0
//! }
//! ```
//!
//! Key order is not JSON's business: a reader parses the same document whatever the order, and the life
//! comes last so that a rank or a signal handler can rewrite it without touching anything else.

use super::document::{HasLife, Row, RunDocument, RunLife};
use crate::error::{Error, Result};
use serde::Serialize;

/// A document with one list that grows while the run goes: rows, pairs' samples, workload's messages.
pub trait Growing: HasLife + Serialize {
    type Item: Serialize;
    /// The list's top-level key.
    const LIST: &'static str;
    fn items(&self) -> &[Self::Item];
    fn items_mut(&mut self) -> &mut Vec<Self::Item>;
    /// How many of the first items will not change again: every one, unless items are filled in where
    /// they stand (a workload's messages, measured one after the other).
    fn settled(&self) -> usize {
        self.items().len()
    }
}

impl Growing for RunDocument {
    type Item = Row;
    const LIST: &'static str = "rows";
    fn items(&self) -> &[Row] {
        &self.rows
    }
    fn items_mut(&mut self) -> &mut Vec<Row> {
        &mut self.rows
    }
}

/// A document's text, cut: `head`, then every settled item (`item_text` after `item_separator`), then
/// `rest`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// From the opening brace to the list's opening bracket.
    pub head: Vec<u8>,
    /// How many of the list's first items have settled.
    pub settled: usize,
    /// The items after those, in full, with their separators: rewritten at every save.
    pub unsettled: Vec<u8>,
    /// The fields between the list and the life, each after its ",\n".
    pub after_list: Vec<u8>,
    /// The list's length.
    pub items: usize,
}

impl Cut {
    /// What follows the settled items, with `life` as the document's last fields.
    pub fn rest(&self, life: &RunLife) -> Result<Vec<u8>> {
        let mut out = self.unsettled.clone();
        out.extend_from_slice(if self.items == 0 { b"]" } else { b"\n  ]" });
        out.extend_from_slice(&self.after_list);
        out.push(b',');
        out.extend_from_slice(&life_region(life)?);
        Ok(out)
    }
}

/// Cuts `doc` (its list is taken out for the time it is serialised, then put back).
pub fn cut<D: Growing>(doc: &mut D) -> Result<Cut> {
    let items = std::mem::take(doc.items_mut());
    let text = serde_json::to_vec_pretty(&*doc);
    *doc.items_mut() = items;
    let text = text.map_err(internal)?;
    let fields = top_level_fields(&text)?;
    let life = life_keys()?;
    let Some(list_at) = fields.iter().position(|(key, _)| key == D::LIST) else {
        return Err(Error::Internal(format!(
            "the document has no top-level \"{}\"",
            D::LIST
        )));
    };
    let mut head = b"{\n".to_vec();
    for (key, field) in &fields[..list_at] {
        if !life.contains(key) {
            head.extend_from_slice(field);
            head.extend_from_slice(b",\n");
        }
    }
    head.extend_from_slice(format!("  {}: [", quoted(D::LIST)?).as_bytes());
    let mut after_list = Vec::new();
    for (key, field) in &fields[list_at + 1..] {
        if !life.contains(key) {
            after_list.extend_from_slice(b",\n");
            after_list.extend_from_slice(field);
        }
    }
    let settled = doc.settled().min(doc.items().len());
    let mut unsettled = Vec::new();
    for (i, item) in doc.items().iter().enumerate().skip(settled) {
        unsettled.extend_from_slice(item_separator(i));
        unsettled.extend_from_slice(&item_text(item)?);
    }
    Ok(Cut {
        head,
        settled,
        unsettled,
        after_list,
        items: doc.items().len(),
    })
}

/// What goes before the item at `index` of the list.
pub fn item_separator(index: usize) -> &'static [u8] {
    if index == 0 {
        b"\n    "
    } else {
        b",\n    "
    }
}

/// One item as the file holds it: compact, on one line.
pub fn item_text(item: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(item).map_err(internal)
}

/// The whole document's text, as the parts put together give it.
pub fn whole<D: Growing>(doc: &mut D) -> Result<Vec<u8>> {
    let cut = cut(doc)?;
    let mut out = cut.head.clone();
    for (i, item) in doc.items().iter().enumerate().take(cut.settled) {
        out.extend_from_slice(item_separator(i));
        out.extend_from_slice(&item_text(item)?);
    }
    out.extend_from_slice(&cut.rest(doc.life())?);
    Ok(out)
}

/// The life's fields as the document's last lines: from the newline before `"run_id"` to the closing
/// brace and a newline. What a failing rank and a signal handler write over the file's end.
pub fn life_region(life: &RunLife) -> Result<Vec<u8>> {
    let mut text = life_object(life)?;
    text.remove(0);
    Ok(text)
}

/// The life alone as a JSON object (what `.FILE.failed` holds): `{` then `life_region`.
pub fn life_object(life: &RunLife) -> Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(life).map_err(internal)?;
    text.push(b'\n');
    Ok(text)
}

/// Where the life's fields begin in `text`, the end of a document in this layout.
pub fn find_life_region(text: &[u8]) -> Option<usize> {
    const START: &[u8] = b"\n  \"run_id\": ";
    text.windows(START.len()).rposition(|w| w == START)
}

/// The life a document's end says, from `find_life_region` on.
pub fn read_life_region(region: &[u8]) -> Option<RunLife> {
    let mut object = b"{".to_vec();
    object.extend_from_slice(region);
    serde_json::from_slice(&object).ok()
}

/// The keys the life flattens into a document.
fn life_keys() -> Result<Vec<String>> {
    match serde_json::to_value(RunLife::running("")).map_err(internal)? {
        serde_json::Value::Object(map) => Ok(map.keys().cloned().collect()),
        _ => Err(Error::Internal("the run's life is not an object".into())),
    }
}

fn quoted(key: &str) -> Result<String> {
    serde_json::to_string(key).map_err(internal)
}

/// Each top-level field of a pretty-printed object, in order: its key and its text (from the indent of
/// its key to the end of its value, without the comma). serde_json indents top-level keys by two spaces
/// and anything nested deeper, and a string never holds a raw newline, so a line that starts with two
/// spaces and a quote starts a field.
fn top_level_fields(text: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = || Error::Internal("a document that serde_json did not lay out as expected".into());
    let body = text
        .strip_prefix(b"{\n")
        .and_then(|t| t.strip_suffix(b"\n}"))
        .ok_or_else(bad)?;
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        if line.starts_with(b"  \"") {
            let key = key_of(&line[2..]).ok_or_else(bad)?;
            fields.push((key, line.to_vec()));
        } else {
            let (_, field) = fields.last_mut().ok_or_else(bad)?;
            field.push(b'\n');
            field.extend_from_slice(line);
        }
    }
    for (_, field) in &mut fields {
        if field.last() == Some(&b',') {
            field.pop();
        }
    }
    Ok(fields)
}

/// The JSON string at the start of `line`, unquoted.
fn key_of(line: &[u8]) -> Option<String> {
    let mut escaped = false;
    for (i, b) in line.iter().enumerate().skip(1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return serde_json::from_slice(&line[..=i]).ok(),
            _ => {}
        }
    }
    None
}

fn internal(e: serde_json::Error) -> Error {
    Error::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::document::RunStatus;
    use crate::report::testdata;

    /// The document as serde_json writes and reads it (its float parsing is not exact, so a value
    /// compared with a parsed file must have been through the same text).
    fn expected(doc: &impl serde::Serialize) -> serde_json::Value {
        serde_json::from_slice(&serde_json::to_vec(doc).unwrap()).unwrap()
    }

    fn doc_with_rows(n: usize) -> RunDocument {
        let mut doc = testdata::running_document();
        doc.rows = (0..n).map(|_| a_row()).collect();
        doc
    }

    fn a_row() -> Row {
        testdata::row(crate::collective::Collective::AllReduce, 1 << 20, 4, 100.0)
    }

    fn parsed(text: &[u8]) -> serde_json::Value {
        serde_json::from_slice(text).expect("valid JSON")
    }

    #[test]
    fn the_parts_put_together_are_the_document() {
        for n in [0, 1, 3] {
            let mut doc = doc_with_rows(n);
            let text = whole(&mut doc).unwrap();
            assert_eq!(parsed(&text), expected(&doc), "{n} rows");
            // The list is back where it was, untouched.
            assert_eq!(doc.rows.len(), n);
        }
    }

    #[test]
    fn the_life_comes_last_and_is_found_there() {
        let mut doc = doc_with_rows(2);
        doc.header.life.error = Some("a \"quoted\"\n\"run_id\": line".into());
        let text = whole(&mut doc).unwrap();
        let at = find_life_region(&text).expect("the life's start");
        assert_eq!(&text[at..], &life_region(&doc.header.life).unwrap()[..]);
        let life: RunLife =
            serde_json::from_slice(&serde_json::to_vec(&doc.header.life).unwrap()).unwrap();
        assert_eq!(read_life_region(&text[at..]), Some(life));
        // A failing rank's mark put over the end leaves a valid document that says so.
        let mut failed = doc.header.life.clone();
        failed.fail("rank 3 fell over", 3, Some(3));
        let mut marked = text[..at].to_vec();
        marked.extend_from_slice(&life_region(&failed).unwrap());
        let v = parsed(&marked);
        assert_eq!(v["status"], "failed");
        assert_eq!(v["rows"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_row_adds_only_its_line_to_what_is_already_written() {
        let mut doc = doc_with_rows(2);
        let before = cut(&mut doc).unwrap();
        doc.rows.push(a_row());
        doc.header.life.heartbeat_unix_s += 1.0;
        let after = cut(&mut doc).unwrap();
        // The head stays as it was, so the file keeps it and every row it holds.
        assert_eq!(before.head, after.head);
        assert_eq!((before.settled, after.settled), (2, 3));
        let item = item_text(&doc.rows[2]).unwrap();
        assert!(!item.contains(&b'\n'), "one line per row");
    }

    #[test]
    fn items_that_have_not_settled_stay_in_the_rest() {
        #[derive(Serialize)]
        struct Doc {
            head: u32,
            #[serde(flatten)]
            life: RunLife,
            messages: Vec<Option<u32>>,
            ranking: Vec<u32>,
        }
        impl HasLife for Doc {
            fn life(&self) -> &RunLife {
                &self.life
            }
            fn life_mut(&mut self) -> &mut RunLife {
                &mut self.life
            }
        }
        impl Growing for Doc {
            type Item = Option<u32>;
            const LIST: &'static str = "messages";
            fn items(&self) -> &[Option<u32>] {
                &self.messages
            }
            fn items_mut(&mut self) -> &mut Vec<Option<u32>> {
                &mut self.messages
            }
            fn settled(&self) -> usize {
                self.messages.iter().take_while(|m| m.is_some()).count()
            }
        }
        let mut doc = Doc {
            head: 7,
            life: RunLife::running("id"),
            messages: vec![Some(1), None, None],
            ranking: vec![],
        };
        let c = cut(&mut doc).unwrap();
        assert_eq!(c.settled, 1);
        assert_eq!(c.unsettled, b",\n    null,\n    null");
        let text = whole(&mut doc).unwrap();
        let v = parsed(&text);
        assert_eq!(v["messages"], serde_json::json!([1, null, null]));
        assert_eq!(v["status"], "running");
        assert_eq!(v["head"], 7);
        doc.life.status = RunStatus::Complete;
        assert_eq!(parsed(&whole(&mut doc).unwrap())["status"], "complete");
    }
}
