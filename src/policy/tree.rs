//! The policy's TOML as a compact tree: `toml_parser`'s events (the lexer and parser that
//! `toml_edit` itself runs on) read a few thousand tokens at a time into one array of
//! nodes, with TOML's rules for tables applied as `toml_edit` applies them (a key defined
//! twice, a table reopened, a dotted key extending an inline table: each an error).
//!
//! Nothing here knows what a policy is; `parse` gives the tree its meaning. The tree holds
//! spans into the text, not copies, so a policy of 100,000 principals costs a few bytes per
//! key on top of its text (docs/performance.md, "A policy of 100,000 principals").

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::lexer::TokenKind;
use toml_parser::parser::{EventReceiver, RecursionGuard, ValidateWhitespace};
use toml_parser::{ErrorSink, Expected, ParseError, Source, Span};

/// How deep arrays and inline tables may nest, and how many parts a dotted key may have:
/// `toml_edit`'s limits, so both accept the same files.
const DEPTH_LIMIT: u32 = 80;

/// Tokens read before the parser runs over them (cut only between top-level lines).
const TOKENS_PER_CHUNK: usize = 4096;

/// The most nodes (keys, tables, values) a policy may have: over a million principals'
/// worth, about 400 MB of tree; and the most tokens one line or value may have. A 64 MiB
/// file of one-character array items would otherwise cost gigabytes.
const MAX_NODES: usize = 8_000_000;
const MAX_TOKENS_PER_LINE: usize = 1 << 20;

/// A table with at least this many entries finds them by hash; smaller ones by a scan.
const INDEXED_FROM: u32 = 8;

const NONE: u32 = u32::MAX;

/// A node of the tree: a table, an array of tables, an array, or a scalar.
pub(super) type NodeId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Table,
    ArrayOfTables,
    Array,
    Scalar(ScalarKind),
}

// Table flags, as TOML's rules need them.
/// Created on the way to another key (`[a.b]` creates `a`); a header may define it later.
const IMPLICIT: u8 = 1;
/// Created by a dotted key (`a.b = 1`); no header may define it.
const DOTTED: u8 = 2;
/// An inline table, or inside one: closed to every later key.
const INLINE: u8 = 4;
/// Defined by a `[header]` of its own.
const HEADER: u8 = 8;

#[derive(Debug, Clone, Copy)]
struct Node {
    kind: Kind,
    flags: u8,
    key_encoding: Option<Encoding>,
    value_encoding: Option<Encoding>,
    /// The key's span (`NONE` start for array items).
    key: (u32, u32),
    /// A scalar's span; a table's or array's first span (its header, or its key).
    value: (u32, u32),
    /// For a table with a header of its own: the comments and blank lines before the
    /// header, the header and its entries, up to the end of its last entry's line.
    section: (u32, u32),
    first: u32,
    last: u32,
    next: u32,
    count: u32,
}

/// A syntax error, or a break of TOML's rules for tables, where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub span: Range<usize>,
    pub message: String,
}

/// The tree of one TOML document.
#[derive(Debug)]
pub(super) struct Tree<'i> {
    source: Source<'i>,
    nodes: Vec<Node>,
    index: HashMap<(u32, Cow<'i, str>), u32, foldhash::fast::RandomState>,
}

impl<'i> Tree<'i> {
    /// Reads `text`; the first error, syntax errors before those of TOML's table rules (as
    /// `toml_edit` reports them).
    pub(super) fn parse(text: &'i str) -> Result<Self, SyntaxError> {
        // Spans are kept in 32 bits; a policy is far smaller (`load::MAX_LEN`).
        if text.len() >= (NONE - 1) as usize {
            return Err(SyntaxError {
                span: 0..0,
                message: "the text is too long for a policy".into(),
            });
        }
        let source = Source::new(text);
        let mut builder = Builder::new(source);
        let mut syntax = FirstError(None);
        {
            let mut validate = ValidateWhitespace::new(&mut builder, source);
            let mut guard = RecursionGuard::new(&mut validate, DEPTH_LIMIT);
            let mut tokens = Vec::with_capacity(TOKENS_PER_CHUNK + 64);
            let mut depth = 0i64;
            for token in source.lex() {
                match token.kind() {
                    TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
                    TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => depth -= 1,
                    _ => {}
                }
                let line_ends = token.kind() == TokenKind::Newline && depth <= 0;
                tokens.push(token);
                if tokens.len() > MAX_TOKENS_PER_LINE {
                    return Err(SyntaxError {
                        span: token.span().start()..token.span().end(),
                        message: "a value or line longer than a policy ever needs".into(),
                    });
                }
                if line_ends && tokens.len() >= TOKENS_PER_CHUNK {
                    toml_parser::parser::parse_document(&tokens, &mut guard, &mut syntax);
                    tokens.clear();
                    depth = 0;
                    if syntax.0.is_some() {
                        break;
                    }
                }
            }
            if syntax.0.is_none() {
                toml_parser::parser::parse_document(&tokens, &mut guard, &mut syntax);
            }
        }
        if let Some(error) = syntax.0.or(builder.error.take()) {
            return Err(SyntaxError::from_parse(&error, text.len()));
        }
        builder.finish();
        Ok(builder.tree)
    }

    /// The document's top-level table.
    pub(super) const fn root() -> NodeId {
        0
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    pub(super) fn kind(&self, id: NodeId) -> Kind {
        self.node(id).kind
    }

    /// A table's or array's entries, in the document's order.
    pub(super) fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let mut next = self.node(id).first;
        std::iter::from_fn(move || {
            (next != NONE).then(|| {
                let id = next;
                next = self.node(id).next;
                id
            })
        })
    }

    /// The node's key, decoded (empty for an array's item).
    pub(super) fn key(&self, id: NodeId) -> Cow<'i, str> {
        let node = self.node(id);
        decode_key(self.source, node.key, node.key_encoding)
    }

    /// Where the node's key is (for a header's table: the header's last key).
    pub(super) fn key_span(&self, id: NodeId) -> Range<usize> {
        let node = self.node(id);
        if node.key.0 == NONE {
            self.value_span(id)
        } else {
            node.key.0 as usize..node.key.1 as usize
        }
    }

    /// Where the node's value is (a table's or array's opening).
    pub(super) fn value_span(&self, id: NodeId) -> Range<usize> {
        let node = self.node(id);
        node.value.0 as usize..node.value.1 as usize
    }

    /// For a table with a header of its own, the text a layout-keeping edit of it may
    /// replace: the comments before its header, the header and its entries.
    pub(super) fn section(&self, id: NodeId) -> Option<Range<usize>> {
        let node = self.node(id);
        (node.kind == Kind::Table && node.flags & HEADER != 0)
            .then_some(node.section.0 as usize..node.section.1 as usize)
    }

    fn decoded(&self, id: NodeId) -> Cow<'i, str> {
        let node = self.node(id);
        let raw = toml_parser::Raw::new_unchecked(
            &self.source.input()[node.value.0 as usize..node.value.1 as usize],
            node.value_encoding,
            Span::new_unchecked(node.value.0 as usize, node.value.1 as usize),
        );
        let mut out = Cow::Borrowed("");
        let _ = raw.decode_scalar(&mut out, &mut FirstError(None));
        out
    }

    /// A string's value.
    pub(super) fn string(&self, id: NodeId) -> Option<Cow<'i, str>> {
        if self.kind(id) != Kind::Scalar(ScalarKind::String) {
            return None;
        }
        let node = self.node(id);
        let raw = &self.source.input()[node.value.0 as usize..node.value.1 as usize];
        // Read once already, so known valid: a literal string, or a basic one without an
        // escape, is its text between the quotes.
        let plain = match node.value_encoding {
            Some(Encoding::LiteralString) => true,
            Some(Encoding::BasicString) => !raw.contains('\\'),
            _ => false,
        };
        Some(if plain && raw.len() >= 2 {
            Cow::Borrowed(&raw[1..raw.len() - 1])
        } else {
            self.decoded(id)
        })
    }

    /// A boolean's value.
    pub(super) fn boolean(&self, id: NodeId) -> Option<bool> {
        match self.kind(id) {
            Kind::Scalar(ScalarKind::Boolean(b)) => Some(b),
            _ => None,
        }
    }

    /// An integer's value (the tree holds only integers that fit in an `i64`).
    pub(super) fn integer(&self, id: NodeId) -> Option<i64> {
        match self.kind(id) {
            Kind::Scalar(ScalarKind::Integer(radix)) => {
                let node = self.node(id);
                let raw = &self.source.input()[node.value.0 as usize..node.value.1 as usize];
                // A plain decimal (no sign, `_` or prefix) is its own digits.
                if raw.bytes().all(|b| b.is_ascii_digit()) {
                    raw.parse().ok()
                } else {
                    i64::from_str_radix(&self.decoded(id), radix.value()).ok()
                }
            }
            _ => None,
        }
    }

    /// A date, time or date and time.
    pub(super) fn datetime(&self, id: NodeId) -> Option<toml_datetime::Datetime> {
        (self.kind(id) == Kind::Scalar(ScalarKind::DateTime))
            .then(|| self.decoded(id).parse().ok())
            .flatten()
    }
}

fn type_name(kind: Kind, flags: u8) -> &'static str {
    match kind {
        Kind::Table if flags & INLINE != 0 => "inline table",
        Kind::Table => "table",
        Kind::ArrayOfTables | Kind::Array => "array",
        Kind::Scalar(ScalarKind::String) => "string",
        Kind::Scalar(ScalarKind::Boolean(_)) => "boolean",
        Kind::Scalar(ScalarKind::DateTime) => "datetime",
        Kind::Scalar(ScalarKind::Float) => "float",
        Kind::Scalar(ScalarKind::Integer(_)) => "integer",
    }
}

fn decode_key(source: Source<'_>, span: (u32, u32), encoding: Option<Encoding>) -> Cow<'_, str> {
    if span.0 == NONE {
        return Cow::Borrowed("");
    }
    let text = &source.input()[span.0 as usize..span.1 as usize];
    if encoding.is_none() {
        // A bare key is its own text.
        return Cow::Borrowed(text);
    }
    let raw = toml_parser::Raw::new_unchecked(
        text,
        encoding,
        Span::new_unchecked(span.0 as usize, span.1 as usize),
    );
    let mut out = Cow::Borrowed("");
    raw.decode_key(&mut out, &mut FirstError(None));
    out
}

impl SyntaxError {
    /// `toml_edit`'s wording of a parser error: its description, then what was expected.
    fn from_parse(error: &ParseError, len: usize) -> Self {
        let mut message = error.description().to_owned();
        if let Some(expected) = error.expected() {
            message.push_str(", expected ");
            if expected.is_empty() {
                message.push_str("nothing");
            }
            for (i, expected) in expected.iter().enumerate() {
                if i != 0 {
                    message.push_str(", ");
                }
                match expected {
                    Expected::Literal("\n") => message.push_str("newline"),
                    Expected::Literal("`") => message.push_str("'`'"),
                    Expected::Literal(s) if s.chars().all(|c| c.is_ascii_control()) => {
                        message.push_str(&format!("`{}`", s.escape_debug()));
                    }
                    Expected::Literal(s) => message.push_str(&format!("`{s}`")),
                    Expected::Description(s) => message.push_str(s),
                    _ => message.push_str("etc"),
                }
            }
        }
        let span = error
            .unexpected()
            .map_or(0..0, |s| s.start().min(len)..s.end().min(len));
        Self { span, message }
    }
}

/// Keeps the first error reported.
struct FirstError(Option<ParseError>);

impl ErrorSink for FirstError {
    fn report_error(&mut self, error: ParseError) {
        if self.0.is_none() {
            self.0 = Some(error);
        }
    }
}

/// One part of a key being read.
struct KeyPart<'i> {
    span: (u32, u32),
    encoding: Option<Encoding>,
    text: Cow<'i, str>,
}

/// Where a value goes once it starts: under `parent`, with this key (none in an array).
struct Slot<'i> {
    parent: u32,
    key: Option<KeyPart<'i>>,
}

enum Frame<'i> {
    Inline {
        table: u32,
        keys: Vec<KeyPart<'i>>,
    },
    Array {
        array: u32,
    },
    /// A value opened after an error: its contents go nowhere.
    Ignored,
}

/// How a key path is followed: from a header, from a dotted key, or inside an inline table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Header,
    Dotted,
    Inline,
}

struct Builder<'i> {
    tree: Tree<'i>,
    /// The table the document's keys go into now.
    current: u32,
    /// Reading a header: whether it is an array of tables, and where it opened.
    header: Option<(bool, u32)>,
    keys: Vec<KeyPart<'i>>,
    frames: Vec<Frame<'i>>,
    slot: Option<Slot<'i>>,
    /// The first break of TOML's table rules (reported after any syntax error).
    error: Option<ParseError>,
    /// Where the last line with something on it ended, and whether this one has something.
    content_end: u32,
    line_has_content: bool,
    /// The table whose header opened the section being read, and where the section began.
    open_section: Option<(u32, u32)>,
}

fn span32(span: Span) -> (u32, u32) {
    // Policies are far smaller than 4 GiB (`load::MAX_LEN`).
    (
        u32::try_from(span.start()).unwrap_or(u32::MAX - 1),
        u32::try_from(span.end()).unwrap_or(u32::MAX - 1),
    )
}

fn err_span(span: (u32, u32)) -> Span {
    Span::new_unchecked(span.0 as usize, span.1 as usize)
}

impl<'i> Builder<'i> {
    fn new(source: Source<'i>) -> Self {
        let root = Node {
            kind: Kind::Table,
            flags: 0,
            key_encoding: None,
            value_encoding: None,
            key: (NONE, NONE),
            value: (0, 0),
            section: (0, 0),
            first: NONE,
            last: NONE,
            next: NONE,
            count: 0,
        };
        Self {
            tree: Tree {
                source,
                nodes: vec![root],
                index: HashMap::default(),
            },
            current: 0,
            header: None,
            keys: Vec::new(),
            frames: Vec::new(),
            slot: None,
            error: None,
            content_end: 0,
            line_has_content: false,
            open_section: None,
        }
    }

    fn fail(&mut self, error: ParseError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    fn find(&self, parent: u32, key: &str) -> Option<u32> {
        let node = self.tree.node(parent);
        if node.count >= INDEXED_FROM {
            return self.tree.index.get(&(parent, Cow::Borrowed(key))).copied();
        }
        self.tree
            .children(parent)
            .find(|&child| self.tree.key(child) == key)
    }

    fn add(
        &mut self,
        parent: u32,
        key: Option<&KeyPart<'i>>,
        kind: Kind,
        flags: u8,
        value: (u32, u32),
    ) -> u32 {
        if self.tree.nodes.len() == MAX_NODES {
            // Every caller stops once an error is recorded: the tree grows no further.
            self.fail(
                ParseError::new("more entries than a policy ever needs")
                    .with_unexpected(err_span(value)),
            );
        }
        let id = u32::try_from(self.tree.nodes.len()).unwrap_or(NONE);
        self.tree.nodes.push(Node {
            kind,
            flags,
            key_encoding: key.and_then(|k| k.encoding),
            value_encoding: None,
            key: key.map_or((NONE, NONE), |k| k.span),
            value,
            section: (0, 0),
            first: NONE,
            last: NONE,
            next: NONE,
            count: 0,
        });
        let p = &mut self.tree.nodes[parent as usize];
        let previous_last = p.last;
        p.last = id;
        if p.first == NONE {
            p.first = id;
        }
        p.count += 1;
        let count = p.count;
        if previous_last != NONE {
            self.tree.nodes[previous_last as usize].next = id;
        }
        if let Some(key) = key {
            if count == INDEXED_FROM {
                let entries: Vec<(u32, Cow<'i, str>)> = self
                    .tree
                    .children(parent)
                    .map(|child| (child, self.tree.key(child)))
                    .collect();
                for (child, text) in entries {
                    self.tree.index.insert((parent, text), child);
                }
            } else if count > INDEXED_FROM {
                self.tree.index.insert((parent, key.text.clone()), id);
            }
        }
        id
    }

    /// Follows `path` from `table`, creating the tables it names; TOML's errors where a
    /// part names something that cannot be extended.
    fn descend(
        &mut self,
        mut table: u32,
        path: &[KeyPart<'i>],
        walk: Walk,
    ) -> Result<u32, ParseError> {
        for part in path {
            table = match self.find(table, &part.text) {
                None => {
                    let flags = match walk {
                        Walk::Header => IMPLICIT,
                        Walk::Dotted => IMPLICIT | DOTTED,
                        Walk::Inline => IMPLICIT | DOTTED | INLINE,
                    };
                    self.add(table, Some(part), Kind::Table, flags, part.span)
                }
                Some(child) => {
                    let node = *self.tree.node(child);
                    let cannot = |what: &str| {
                        ParseError::new(format!(
                            "cannot extend value of type {what} with a dotted key"
                        ))
                        .with_unexpected(err_span(part.span))
                    };
                    match node.kind {
                        Kind::ArrayOfTables if walk != Walk::Inline => node.last,
                        Kind::Table => {
                            if walk != Walk::Inline && node.flags & INLINE != 0 {
                                return Err(cannot("inline table"));
                            }
                            if walk != Walk::Header && node.flags & IMPLICIT == 0 {
                                return Err(ParseError::new("duplicate key")
                                    .with_unexpected(err_span(part.span)));
                            }
                            if walk == Walk::Dotted {
                                // As `toml_edit`: a table a header only implied
                                // (`[a.b.c]` then `[a]`, `b.d = 1`) may be extended by a
                                // dotted key, and is a dotted key's table from then on.
                                self.tree.nodes[child as usize].flags |= DOTTED;
                            }
                            child
                        }
                        kind => return Err(cannot(type_name(kind, node.flags))),
                    }
                }
            };
        }
        Ok(table)
    }

    /// A `key = ` at the document's level or in an inline table: where its value goes.
    fn key_value(
        &mut self,
        table: u32,
        mut keys: Vec<KeyPart<'i>>,
        walk: Walk,
    ) -> Result<Slot<'i>, ParseError> {
        let Some(last) = keys.pop() else {
            return Err(ParseError::new("expected a key"));
        };
        if keys.len() >= DEPTH_LIMIT as usize {
            return Err(ParseError::new("recursion limit").with_unexpected(err_span(last.span)));
        }
        let parent = self.descend(table, &keys, walk)?;
        let dotted = self.tree.node(parent).flags & DOTTED != 0;
        if dotted == keys.is_empty() {
            return Err(ParseError::new("duplicate key").with_unexpected(err_span(last.span)));
        }
        if let Some(old) = self.find(parent, &last.text) {
            return Err(ParseError::new("duplicate key")
                .with_unexpected(err_span(last.span))
                .with_context(err_span(self.tree.node(old).key)));
        }
        Ok(Slot {
            parent,
            key: Some(last),
        })
    }

    /// A value starts: a node where the open `key =` or array puts it.
    fn place(
        &mut self,
        kind: Kind,
        flags: u8,
        span: (u32, u32),
        encoding: Option<Encoding>,
    ) -> Option<u32> {
        let slot = match self.frames.last() {
            Some(Frame::Array { array }) => Slot {
                parent: *array,
                key: None,
            },
            Some(Frame::Ignored) => return None,
            Some(Frame::Inline { .. }) | None => self.slot.take()?,
        };
        let id = self.add(slot.parent, slot.key.as_ref(), kind, flags, span);
        self.tree.nodes[id as usize].value_encoding = encoding;
        Some(id)
    }

    fn open_header(&mut self, array: bool, span: Span) {
        self.close_section();
        self.header = Some((array, span32(span).0));
        self.keys.clear();
        self.line_has_content = true;
    }

    fn close_section(&mut self) {
        if let Some((table, start)) = self.open_section.take() {
            self.tree.nodes[table as usize].section = (start, self.content_end.max(start));
        }
    }

    fn close_header(&mut self, span: Span) -> Result<(), ParseError> {
        let Some((array, open)) = self.header.take() else {
            return Ok(());
        };
        let mut keys = std::mem::take(&mut self.keys);
        let Some(last) = keys.pop() else {
            return Ok(());
        };
        if keys.len() >= DEPTH_LIMIT as usize {
            return Err(ParseError::new("recursion limit").with_unexpected(err_span(last.span)));
        }
        let header = (open, span32(span).1);
        let parent = self.descend(0, &keys, Walk::Header)?;
        let existing = self.find(parent, &last.text);
        let duplicate = |old: u32, this: &Self| {
            ParseError::new("duplicate key")
                .with_unexpected(err_span(last.span))
                .with_context(err_span(this.tree.node(old).key))
        };
        self.current = if array {
            let list = match existing {
                None => self.add(parent, Some(&last), Kind::ArrayOfTables, 0, header),
                Some(old) if self.tree.node(old).kind == Kind::ArrayOfTables => old,
                Some(old) => return Err(duplicate(old, self)),
            };
            self.add(list, None, Kind::Table, 0, header)
        } else {
            let table = match existing {
                None => self.add(parent, Some(&last), Kind::Table, HEADER, header),
                Some(old) => {
                    let node = self.tree.node(old);
                    if node.kind != Kind::Table
                        || node.flags & (IMPLICIT | DOTTED | INLINE) != IMPLICIT
                    {
                        return Err(duplicate(old, self));
                    }
                    let node = &mut self.tree.nodes[old as usize];
                    node.flags = HEADER;
                    node.value = header;
                    old
                }
            };
            self.open_section = Some((table, self.content_end));
            table
        };
        Ok(())
    }

    fn finish(&mut self) {
        if self.line_has_content {
            self.content_end = u32::try_from(self.tree.source.input().len()).unwrap_or(NONE - 1);
        }
        self.close_section();
    }

    fn scalar_kind(
        &self,
        span: Span,
        encoding: Option<Encoding>,
        error: &mut dyn ErrorSink,
    ) -> ScalarKind {
        let Some(raw) = self.tree.source.get(span) else {
            return ScalarKind::String;
        };
        let raw = toml_parser::Raw::new_unchecked(raw.as_str(), encoding, span);
        let mut decoded = Cow::Borrowed("");
        let kind = raw.decode_scalar(&mut decoded, error);
        // The checks `toml_edit` makes when it turns the text into a value.
        let bad = |message: String| ParseError::new(message).with_unexpected(span);
        match kind {
            ScalarKind::DateTime => {
                if let Err(e) = decoded.parse::<toml_datetime::Datetime>() {
                    error.report_error(bad(e.to_string()));
                }
            }
            ScalarKind::Float => match decoded.parse::<f64>() {
                Ok(value)
                    if value.is_infinite()
                        && !decoded
                            .strip_prefix(['+', '-'])
                            .unwrap_or(&decoded)
                            .chars()
                            .all(|c| c.is_ascii_alphabetic()) =>
                {
                    error.report_error(bad("floating-point number overflowed".into()));
                }
                Ok(_) => {}
                Err(_) => error.report_error(bad(kind.invalid_description().into())),
            },
            ScalarKind::Integer(radix) => {
                if i64::from_str_radix(&decoded, radix.value()).is_err() {
                    error.report_error(bad("integer number overflowed".into()));
                }
            }
            ScalarKind::String | ScalarKind::Boolean(_) => {}
        }
        kind
    }
}

impl<'i> EventReceiver for Builder<'i> {
    fn std_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.open_header(false, span);
    }

    fn std_table_close(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        if self.error.is_none()
            && let Err(e) = self.close_header(span)
        {
            self.fail(e);
        }
    }

    fn array_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.open_header(true, span);
    }

    fn array_table_close(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.std_table_close(span, error);
    }

    fn inline_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.line_has_content = true;
        if self.error.is_none()
            && let Some(table) = self.place(Kind::Table, INLINE, span32(span), None)
        {
            self.frames.push(Frame::Inline {
                table,
                keys: Vec::new(),
            });
            return true;
        }
        // After an error: a frame all the same, so that closes still match.
        self.frames.push(Frame::Ignored);
        true
    }

    fn inline_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.frames.pop();
    }

    fn array_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.line_has_content = true;
        let array = if self.error.is_none() {
            self.place(Kind::Array, 0, span32(span), None)
        } else {
            None
        };
        self.frames
            .push(array.map_or(Frame::Ignored, |array| Frame::Array { array }));
        true
    }

    fn array_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.frames.pop();
    }

    fn simple_key(&mut self, span: Span, encoding: Option<Encoding>, error: &mut dyn ErrorSink) {
        self.line_has_content = true;
        let mut text = Cow::Borrowed("");
        if let Some(raw) = self.tree.source.get(span) {
            toml_parser::Raw::new_unchecked(raw.as_str(), encoding, span)
                .decode_key(&mut text, error);
        }
        let part = KeyPart {
            span: span32(span),
            encoding,
            text,
        };
        match self.frames.last_mut() {
            Some(Frame::Inline { keys, .. }) => keys.push(part),
            Some(Frame::Array { .. } | Frame::Ignored) => {}
            None => self.keys.push(part),
        }
    }

    fn key_val_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        if self.error.is_some() {
            return;
        }
        let result = match self.frames.last_mut() {
            Some(Frame::Inline { table, keys }) => {
                let (table, keys) = (*table, std::mem::take(keys));
                self.key_value(table, keys, Walk::Inline)
            }
            Some(Frame::Array { .. } | Frame::Ignored) => return,
            None => {
                let keys = std::mem::take(&mut self.keys);
                self.key_value(self.current, keys, Walk::Dotted)
            }
        };
        match result {
            Ok(slot) => self.slot = Some(slot),
            Err(e) => self.fail(e),
        }
    }

    fn scalar(&mut self, span: Span, encoding: Option<Encoding>, error: &mut dyn ErrorSink) {
        self.line_has_content = true;
        let kind = self.scalar_kind(span, encoding, error);
        if self.error.is_none() {
            self.place(Kind::Scalar(kind), 0, span32(span), encoding);
        }
    }

    fn newline(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        if self.frames.is_empty() && self.line_has_content {
            self.content_end = span32(span).1;
            self.line_has_content = false;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn error_of(text: &str) -> String {
        match Tree::parse(text) {
            Ok(_) => String::new(),
            Err(e) => e.message,
        }
    }

    #[test]
    fn tables_follow_tomls_rules() {
        for (text, ok) in [
            ("a.b = 1\na.c = 2\n", true),
            ("a.b = 1\na = 2\n", false),
            ("[a]\nb = 1\n[a]\n", false),
            ("[a.b]\n[a]\n", true),
            ("[a]\n[a.b]\n[a]\n", false),
            ("a.b.c = 1\n[a.b.d]\n", true),
            ("a.b.c = 1\n[a.b]\n", false),
            ("a = { b = 1 }\n[a.c]\n", false),
            ("a = { b = 1 }\na.c = 2\n", false),
            ("a = { b.c = 1, b.d = 2 }\n", true),
            ("a = { b = { c = 1 }, b.d = 2 }\n", false),
            ("[[a]]\nb = 1\n[[a]]\nb = 2\n[a.c]\n", true),
            ("a = [1]\n[[a]]\n", false),
            ("[a]\n[[a]]\n", false),
            ("[x.y]\n[x]\ny.z = 1\n", false),
            ("[a.b.c]\n[a]\nb.d = 1\n", true),
            ("[a.b.c]\n[a]\nb.d = 1\n[a.b]\n", false),
            ("[[a.b.c]]\n[a]\nb.d = 1\n", true),
            ("a = 1\n\"a\" = 2\n", false),
            ("b = 99999999999999999999\n", false),
            ("b = 1979-05-27T07:32:00Z\n", true),
            ("b = 1979-13-27\n", false),
            ("b = 1e999\n", false),
            ("b = inf\n", true),
        ] {
            assert_eq!(
                Tree::parse(text).is_ok(),
                ok,
                "{text:?}: {}",
                error_of(text)
            );
        }
    }

    /// A key of 80 parts is `toml_edit`'s longest (its limit counts the parts before the
    /// last); headers, dotted keys and keys in inline tables alike.
    #[test]
    fn keys_are_as_long_as_toml_edit_allows() {
        let path = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(".")
        };
        for n in [79, 80, 81] {
            for text in [
                format!("{} = 1\n", path(n)),
                format!("[{}]\n", path(n)),
                format!("a = {{ {} = 1 }}\n", path(n)),
            ] {
                assert_eq!(
                    Tree::parse(&text).is_ok(),
                    text.parse::<toml_edit::DocumentMut>().is_ok(),
                    "{n} parts: {text}"
                );
                assert_eq!(Tree::parse(&text).is_ok(), n <= 80, "{n} parts");
            }
        }
    }

    #[test]
    fn a_file_of_tiny_values_is_refused_before_it_costs_gigabytes() {
        let long_line = format!("a = [{}]\n", "1,".repeat(MAX_TOKENS_PER_LINE));
        let e = Tree::parse(&long_line).unwrap_err();
        assert!(e.message.contains("longer than"), "{}", e.message);
        let many: String = (0..MAX_NODES / 1000 + 1)
            .map(|i| format!("k{i} = [{}]\n", "1,".repeat(999)))
            .collect();
        let e = Tree::parse(&many).unwrap_err();
        assert!(e.message.contains("more entries"), "{}", e.message);
    }

    #[test]
    fn large_tables_find_keys_by_hash() {
        let text: String = (0..100).map(|i| format!("[t.k{i}]\nv = {i}\n")).collect();
        let tree = Tree::parse(&text).unwrap();
        let t = tree.children(Tree::root()).next().unwrap();
        assert_eq!(tree.children(t).count(), 100);
        assert!(Tree::parse(&format!("{text}[t.k42]\n")).is_err());
        assert!(Tree::parse(&format!("{text}[t.\"k42\"]\n")).is_err());
    }

    #[test]
    fn sections_run_from_the_comments_before_a_header_to_its_last_entry() {
        let text = "# top\n[a]\nx = 1 # one\n\n# about b\n[b]\ny = 2\n# trailing\n";
        let tree = Tree::parse(text).unwrap();
        let sections: Vec<&str> = tree
            .children(Tree::root())
            .map(|t| &text[tree.section(t).unwrap()])
            .collect();
        assert_eq!(
            sections,
            ["# top\n[a]\nx = 1 # one\n", "\n# about b\n[b]\ny = 2\n"]
        );
    }

    #[test]
    fn errors_keep_tomls_words_and_place() {
        let e = Tree::parse("a = 1\na = 2\n").unwrap_err();
        assert_eq!((e.message.as_str(), e.span), ("duplicate key", 6..7));
        let e = Tree::parse("a = \n").unwrap_err();
        assert!(e.message.contains("expected"), "{}", e.message);
    }

    #[test]
    fn long_files_are_read_in_chunks_with_the_same_result() {
        let mut text: String = (0..5000)
            .map(|i| format!("k{i} = [\n  {i},\n]\n"))
            .collect();
        assert!(Tree::parse(&text).is_ok());
        text.push_str("k17 = 1\n");
        let e = Tree::parse(&text).unwrap_err();
        assert_eq!(e.message, "duplicate key");
    }

    /// Policy-shaped TOML in every layout TOML allows for it, and damaged copies of it.
    pub(in crate::policy) mod generate {
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            "host-[a-z]{1,3}".prop_map(|s| s)
        }

        fn field() -> impl Strategy<Value = String> {
            prop_oneof![
                (0i64..4).prop_map(|g| format!("generation = {g}")),
                any::<bool>().prop_map(|b| format!("revoked = {b}")),
                prop_oneof![
                    Just("true"),
                    Just("false"),
                    Just("2026-12-01"),
                    Just("2026-12-01T10:00:00Z")
                ]
                .prop_map(|v| format!("keep_previous = {v}")),
                Just("minted_under = \"SHA256:0011223344556677\"".to_owned()),
                Just("algorithms = [\"hmac-md5\", \"hmac-sha256\"]".to_owned()),
                Just("algorithms = [ \"hmac-sha256\" ] # one".to_owned()),
                Just("machine_generations = { b-1 = 2, \"B.x\" = 1 }".to_owned()),
                Just("machine_generations = { b-0 = 0 } # one".to_owned()),
                (1i64..4).prop_map(|g| format!("machine_generations.b-2 = {g}")),
            ]
        }

        fn principal() -> impl Strategy<Value = (u8, String, Vec<String>, bool, bool)> {
            (
                0u8..4,
                name(),
                prop::collection::vec(field(), 0..4),
                any::<bool>(),
                any::<bool>(),
            )
        }

        fn keyring() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                Just("\n[keyring]\nprevious = [{ file = \"old.key\" }, { command = \"pass show x\" }]\n".to_owned()),
                Just("\n[[keyring.previous]]\nfile = \"a.key\"\n\n[[keyring.previous]]\ncommand = \"c\"\nalgorithms = [\"hmac-md5\"]\n".to_owned()),
            ]
        }

        /// A policy: principals with headers of their own, dotted keys, inline tables,
        /// quoted names, comments; sometimes the default algorithm and a keyring.
        pub(in crate::policy) fn policy() -> impl Strategy<Value = String> {
            (
                any::<bool>(),
                prop::collection::vec(principal(), 0..6),
                keyring(),
            )
                .prop_map(|(algorithm, principals, keyring)| {
                    let mut top = String::new();
                    let mut under = String::new();
                    let mut headers = String::new();
                    if algorithm {
                        top.push_str("algorithm = \"hmac-sha256\"\n");
                    }
                    for (layout, name, fields, comment, subtable) in principals {
                        let quoted = if comment {
                            format!("\"{name}\"")
                        } else {
                            name.clone()
                        };
                        match layout {
                            0 => {
                                if comment {
                                    headers.push_str(&format!("\n# about {name}\n"));
                                }
                                headers.push_str(&format!("[principals.{quoted}]\n"));
                                for f in &fields {
                                    headers.push_str(f);
                                    headers.push('\n');
                                }
                                // A field with a header of its own, after the principal's.
                                if subtable {
                                    headers.push_str(&format!(
                                        "[principals.{quoted}.machine_generations]\nb-3 = 1\n"
                                    ));
                                }
                            }
                            1 => {
                                for f in &fields {
                                    under.push_str(&format!("{quoted}.{f}\n"));
                                }
                            }
                            2 => under.push_str(&format!(
                                "{quoted} = {{ {} }}\n",
                                fields.join(", ").replace(" # one", "")
                            )),
                            _ => {
                                for f in &fields {
                                    top.push_str(&format!(
                                        "principals.{quoted}.{}\n",
                                        f.replace(" # one", "")
                                    ));
                                }
                            }
                        }
                    }
                    let principals = if under.is_empty() {
                        String::new()
                    } else {
                        format!("[principals]\n{under}")
                    };
                    format!("# policy\n{top}{principals}{headers}{keyring}")
                })
        }

        /// A policy, or a copy damaged in one place: a line repeated, dropped or moved, a
        /// character added or taken away.
        pub(in crate::policy) fn maybe_damaged() -> impl Strategy<Value = String> {
            (
                policy(),
                0u8..6,
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                prop::sample::select(vec![
                    '[', ']', '{', '}', '=', '"', '.', ',', '\n', '#', 'x', ' ', '1',
                ]),
            )
                .prop_map(|(text, how, a, b, c)| {
                    let mut lines: Vec<&str> = text.lines().collect();
                    let (i, j) = (a.index(lines.len()), b.index(lines.len()));
                    let mut chars: Vec<char> = text.chars().collect();
                    let k = a.index(chars.len() + 1);
                    match how {
                        0 => text,
                        1 => {
                            lines.insert(j, lines[i]);
                            lines.join("\n") + "\n"
                        }
                        2 => {
                            lines.remove(i);
                            lines.join("\n") + "\n"
                        }
                        3 => {
                            lines.swap(i, j);
                            lines.join("\n") + "\n"
                        }
                        4 => {
                            chars.insert(k, c);
                            chars.into_iter().collect()
                        }
                        _ => {
                            if k < chars.len() {
                                chars.remove(k);
                            }
                            chars.into_iter().collect()
                        }
                    }
                })
        }
    }

    /// The tree as plain values, to hold against `toml_edit`'s document.
    fn plain(tree: &Tree<'_>, id: NodeId) -> serde_json::Value {
        use serde_json::Value as J;
        match tree.kind(id) {
            Kind::Table => J::Object(
                tree.children(id)
                    .map(|c| (tree.key(c).into_owned(), plain(tree, c)))
                    .collect(),
            ),
            Kind::ArrayOfTables | Kind::Array => {
                J::Array(tree.children(id).map(|c| plain(tree, c)).collect())
            }
            Kind::Scalar(ScalarKind::String) => J::String(tree.string(id).unwrap().into_owned()),
            Kind::Scalar(ScalarKind::Boolean(b)) => J::Bool(b),
            Kind::Scalar(ScalarKind::Integer(_)) => J::from(tree.integer(id).unwrap()),
            Kind::Scalar(ScalarKind::DateTime) => J::String(tree.datetime(id).unwrap().to_string()),
            Kind::Scalar(ScalarKind::Float) => {
                J::String(format!("{:?}", tree.decoded(id).parse::<f64>().unwrap()))
            }
        }
    }

    fn plain_item(item: &toml_edit::Item) -> serde_json::Value {
        use serde_json::Value as J;
        use toml_edit::{Item, Value};
        fn value(v: &Value) -> J {
            match v {
                Value::String(s) => J::String(s.value().clone()),
                Value::Integer(i) => J::from(*i.value()),
                Value::Float(f) => J::String(format!("{:?}", f.value())),
                Value::Boolean(b) => J::Bool(*b.value()),
                Value::Datetime(d) => J::String(d.value().to_string()),
                Value::Array(a) => J::Array(a.iter().map(value).collect()),
                Value::InlineTable(t) => {
                    J::Object(t.iter().map(|(k, v)| (k.to_owned(), value(v))).collect())
                }
            }
        }
        match item {
            Item::None => J::Null,
            Item::Value(v) => value(v),
            Item::Table(t) => J::Object(
                t.iter()
                    .map(|(k, v)| (k.to_owned(), plain_item(v)))
                    .collect(),
            ),
            Item::ArrayOfTables(a) => J::Array(
                a.iter()
                    .map(|t| {
                        J::Object(
                            t.iter()
                                .map(|(k, v)| (k.to_owned(), plain_item(v)))
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// The reader and `toml_edit` (the editor's parser) accept the same files and read
        /// the same values from them.
        #[test]
        fn the_reader_reads_what_toml_edit_reads(text in generate::maybe_damaged()) {
            let ours = Tree::parse(&text);
            let theirs = text.parse::<toml_edit::DocumentMut>();
            match (&ours, &theirs) {
                (Ok(tree), Ok(doc)) => proptest::prop_assert_eq!(plain(tree, Tree::root()), plain_item(doc.as_item()), "{}", text),
                (Err(_), Err(_)) => {}
                _ => proptest::prop_assert!(false, "{text:?}: reader {:?}, toml_edit {:?}", ours.as_ref().err(), theirs.as_ref().err().map(toml_edit::TomlError::message)),
            }
        }
    }

    #[test]
    fn the_generator_makes_files_both_kept_and_refused() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = generate::maybe_damaged();
        let accepted = (0..1000)
            .filter(|_| {
                let text = strategy.new_tree(&mut runner).unwrap().current();
                Tree::parse(&text).is_ok()
            })
            .count();
        assert!(
            (200..=900).contains(&accepted),
            "{accepted} of 1000 accepted"
        );
    }

    fn compare(text: &str) -> Result<(), String> {
        let ours = Tree::parse(text);
        let theirs = text.parse::<toml_edit::DocumentMut>();
        match (&ours, &theirs) {
            (Ok(tree), Ok(doc)) => {
                let a = plain(tree, Tree::root());
                let b = plain_item(doc.as_item());
                if a == b {
                    Ok(())
                } else {
                    Err(format!("values differ {text:?}\n ours {a}\n them {b}"))
                }
            }
            (Err(_), Err(_)) => Ok(()),
            _ => Err(format!(
                "{text:?}: reader {:?}, toml_edit {:?}",
                ours.as_ref().err(),
                theirs.as_ref().err().map(toml_edit::TomlError::message)
            )),
        }
    }

    /// Files picked by hand (a red-team pass, 2026-11-30): each read as `toml_edit` reads it.
    #[test]
    fn hand_picked_files_read_as_toml_edit_reads_them() {
        let path80 = (0..80)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(".");
        let path81 = (0..81)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(".");
        let path79 = (0..79)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(".");
        let cases: Vec<String> = vec![
            "[a.b.c]\n[a]\nb.d = 1\n".into(),
            "[a.b.c]\n[a]\nb.d = 1\n[a.b]\n".into(),
            format!("{path79} = 1\n"),
            format!("{path80} = 1\n"),
            format!("{path81} = 1\n"),
            format!("[{path79}]\n"),
            format!("[{path80}]\n"),
            format!("[{path81}]\n"),
            format!("a = {{ {path80} = 1 }}\n"),
            "\u{feff}a = 1\n".into(),
            "a = 1\r\nb = 2\r\n".into(),
            "a = 1\rb = 2\n".into(),
            "a = 1 # \u{7f}\n".into(),
            "a = 1 # \u{1}\n".into(),
            "a = 1 # \t\n".into(),
            "a = {\n b = 1,\n}\n".into(),
            "a = { b = 1, }\n".into(),
            "a = \"\\e\"\n".into(),
            "a = \"\\x41\"\n".into(),
            "\"a\" = 1\na = 2\n".into(),
            "\"\\u0061\" = 1\na = 2\n".into(),
            "[principals]\n\"host-a\".revoked = true\n[principals.host-a]\n".into(),
            "principals.host-a.revoked = true\n[principals]\n".into(),
            "principals.host-a.revoked = true\n[principals.host-a]\n".into(),
            "principals.host-a.revoked = true\n[principals.host-b]\n".into(),
            "[[keyring.previous]]\nfile='a'\n[keyring]\n".into(),
            "[keyring]\n[[keyring.previous]]\nfile='a'\n".into(),
            "[[keyring.previous]]\nfile='a'\n[keyring.previous.x]\n".into(),
            "[[a]]\n[a.b]\n[a]\n".into(),
            "[[a]]\nb.c = 1\n[a.b]\n".into(),
            "[[a]]\n[a.b]\n[[a]]\n[a.b]\n".into(),
            "[a]\nb.c = 1\n[a.b.d]\n".into(),
            "a.b = 1\n[a]\n".into(),
            "[a.b]\n[a]\n[a.b]\n".into(),
            "a = []\n[[a]]\n".into(),
            "[[a.b]]\n[a]\nb = 1\n".into(),
            "[[a.b]]\n[a]\n".into(),
            "[a]\n[[a.b]]\n[a.b.c]\n[[a.b]]\n".into(),
            "a = 0x_1\n".into(),
            "a = 1__2\n".into(),
            "a = 00\n".into(),
            "a = +0x1\n".into(),
            "a = 1979-05-27 07:32:00Z\n".into(),
            "a = 1979-05-27T07:32Z\n".into(),
            "a = 07:32\n".into(),
            "a = -nan\n".into(),
            "a = 1e1000\n".into(),
            "a = 1.0e-400\n".into(),
            "a=\"\"\"\n\\\n  x\"\"\"\n".into(),
            "a = '''x''''\n".into(),
            "a.\"b\" = 1\na.b.c = 2\n".into(),
            "a = 1\n\u{0}".into(),
            "a = 1".into(),
            "[a]".into(),
            "[a]\r".into(),
            "[ a . b ]\n".into(),
            "[a]\n[ \"a\" ]\n".into(),
            "['a']\n[\"a\"]\n".into(),
            "a = { b = 1 }\n[a]\n".into(),
            "a = [{ b = 1 }]\n[[a]]\n".into(),
            "a = [{ b = 1 }]\n[a.c]\n".into(),
            "[[a]]\n[[a.b]]\n[a.b.c]\n".into(),
        ];
        let mut bad = Vec::new();
        for c in &cases {
            if let Err(e) = compare(c) {
                bad.push(e);
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len() as u64) as usize]
        }
    }

    fn gen_key(r: &mut Rng) -> String {
        if r.below(4) == 0 {
            return odd_key(r);
        }
        r.pick(&[
            "a",
            "b",
            "\"a\"",
            "'b'",
            "\"\\u0061\"",
            "principals",
            "host-a",
            "\"host-a\"",
            "keyring",
            "previous",
            "c",
            "\"\"",
            "1",
            "a.b",
            "\"a.b\"",
        ])
        .to_owned()
    }
    fn odd_value(r: &mut Rng) -> String {
        r.pick(&[
            r#"2026-12-01"#,
            r#"+1"#,
            r#"0x1f"#,
            r#"1_000"#,
            r#"-0"#,
            r#"nan"#,
            r#"-inf"#,
            r#"1e5"#,
            r#"1.5"#,
            r#"-0.0"#,
            r#"0.0e0"#,
            r#"1979-05-27T00:32:00.999999-07:00"#,
            r#"07:32:00"#,
            r#"1979-05-27T07:32:00"#,
            r#"0o7"#,
            r#"0b1"#,
            r#""\u00e9""#,
            r#""\\""#,
            r#""\U0001F600""#,
            r#"'\'"#,
            r#""\x41""#,
            r#""\e""#,
            r#""é""#,
            r#"9223372036854775807"#,
            r#"-9223372036854775808"#,
            r#"1979-05-27 07:32:00Z"#,
            r#"1979-05-27t07:32:00z"#,
            r#"1e-400"#,
            r#"0.1e+1_0"#,
            "\"\"\"\\\n  x\"\"\"",
            r#"'''a''''"#,
            r#""""a"""""#,
            r#"07:32"#,
            r#"1979-05-27T07:32Z"#,
            r#"0x"#,
            r#"1."#,
        ])
        .to_owned()
    }
    fn odd_key(r: &mut Rng) -> String {
        r.pick(&[
            r#""é""#,
            r#"é"#,
            r#""\u00e9""#,
            r#"'a b'"#,
            r#""a b""#,
            r#"0"#,
            r#"-"#,
            r#"_"#,
            r#"true"#,
            r#"inf"#,
            r#"1979-05-27"#,
            r#""\x61""#,
            r#"1.2"#,
        ])
        .to_owned()
    }
    fn gen_path(r: &mut Rng, max: u64) -> String {
        let n = 1 + r.below(max);
        (0..n)
            .map(|_| gen_key(r))
            .collect::<Vec<_>>()
            .join(r.pick(&[".", " . ", "."]))
    }
    fn gen_value(r: &mut Rng, depth: u32, nl: &str) -> String {
        let k = if depth > 3 { r.below(6) } else { r.below(10) };
        match k {
            0 => "1".into(),
            1 => "true".into(),
            2 => "\"s\"".into(),
            3 => "'x'".into(),
            4 => odd_value(r),
            5 => "\"\"\"m\nl\"\"\"".into(),
            6 | 7 => {
                let n = r.below(3);
                let sep = if r.below(3) == 0 {
                    format!(",{nl}")
                } else {
                    ", ".into()
                };
                let items: Vec<String> = (0..n)
                    .map(|_| format!("{} = {}", gen_path(r, 2), gen_value(r, depth + 1, nl)))
                    .collect();
                let trail = if r.below(4) == 0 { "," } else { "" };
                let open = if r.below(4) == 0 {
                    format!("{{{nl}")
                } else {
                    "{ ".into()
                };
                format!("{open}{}{trail} }}", items.join(&sep))
            }
            _ => {
                let n = r.below(3);
                let sep = if r.below(3) == 0 {
                    format!(",{nl}")
                } else {
                    ", ".into()
                };
                let items: Vec<String> = (0..n).map(|_| gen_value(r, depth + 1, nl)).collect();
                let c = if r.below(5) == 0 {
                    format!(" # c{nl}")
                } else {
                    String::new()
                };
                format!("[{c}{}]", items.join(&sep))
            }
        }
    }
    fn gen_doc(r: &mut Rng) -> String {
        let nl = if r.below(4) == 0 { "\r\n" } else { "\n" };
        let mut out = String::new();
        if r.below(10) == 0 {
            out.push('\u{feff}');
        }
        if r.below(3) == 0 {
            let n = 600 + r.below(300);
            for i in 0..n {
                out.push_str(&format!("f{i} = {i}{nl}"));
            }
        }
        let lines = 1 + r.below(8);
        for _ in 0..lines {
            match r.below(6) {
                0 => out.push_str(&format!("[{}]", gen_path(r, 3))),
                1 => out.push_str(&format!("[[{}]]", gen_path(r, 3))),
                2 => out.push_str(&format!(
                    "# comment{}",
                    r.pick(&["", "\u{7f}", "\t", "\u{1}", "é"])
                )),
                _ => out.push_str(&format!("{} = {}", gen_path(r, 3), gen_value(r, 0, nl))),
            }
            if r.below(6) == 0 {
                out.push_str(" # trailing");
            }
            out.push_str(nl);
        }
        // Damage sometimes.
        if r.below(4) == 0 && !out.is_empty() {
            let mut chars: Vec<char> = out.chars().collect();
            let i = r.below(chars.len() as u64) as usize;
            match r.below(3) {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(
                    i,
                    ['[', ']', '{', '}', '\n', '\r', ',', '"', '.', '='][r.below(10) as usize],
                ),
                _ => chars.insert(i, '\n'),
            }
            out = chars.into_iter().collect();
        }
        out
    }

    /// General TOML, not only a policy's shapes (odd keys and values, inline tables over
    /// lines, CRLF, a BOM, hundreds of filler lines so that chunks are cut everywhere,
    /// damaged copies): the reader and `toml_edit` agree. `TREE_FUZZ_SEED` and
    /// `TREE_FUZZ_CASES` run it longer (150,000 cases passed on 2026-11-30).
    #[test]
    fn any_toml_reads_as_toml_edit_reads_it() {
        let seed: u64 = std::env::var("TREE_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        let iters: u64 = std::env::var("TREE_FUZZ_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1500);
        let mut r = Rng(seed);
        let mut bad = Vec::new();
        for _ in 0..iters {
            let doc = gen_doc(&mut r);
            let result = std::panic::catch_unwind(|| compare(&doc));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bad.push(
                    e.chars()
                        .rev()
                        .take(600)
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect::<String>(),
                ),
                Err(_) => bad.push(format!("PANIC {doc:?}")),
            }
            if bad.len() > 15 {
                break;
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n----\n"));
    }
}
