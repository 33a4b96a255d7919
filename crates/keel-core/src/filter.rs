//! MLflow's search-filter grammar: `metrics.acc > 0.9 and params.lr = '0.1' and tags.t LIKE 'a%'`.
//!
//! A filter is comparisons joined by `AND` (no `OR`, no parentheses around clauses). Each
//! comparison is `identifier operator value`, where the identifier is `entity.key` (the key may be
//! quoted with double quotes or backticks) or a bare attribute name. [`parse`] turns the text into
//! [`Comparison`]s; the per-search modules ([`runs`], [`experiments`], [`registry`],
//! [`logged_models`]) check entities, keys, operators and value types against what MLflow allows.

use crate::error::{Error, Result};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Str(String),
    List(Vec<String>),
    None,
}

/// One `identifier operator value` clause, before the search kind checks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The entity prefix as written (`metrics`, `params`, ...), `None` for a bare name.
    pub entity: Option<String>,
    pub key: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Str(String),
    Num(f64),
    Op(String),
    LParen,
    RParen,
    Comma,
}

fn bad(filter: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("Invalid filter '{filter}': {what}"))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '-')
}

fn tokenize(input: &str) -> Result<Vec<(usize, Tok)>> {
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).map(|&(_, c)| c);
        match c {
            '(' => {
                out.push((pos, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((pos, Tok::RParen));
                i += 1;
            }
            ',' => {
                out.push((pos, Tok::Comma));
                i += 1;
            }
            '\'' | '"' | '`' => {
                let mut s = String::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < chars.len() {
                    let ch = chars[j].1;
                    if ch == c {
                        // A doubled quote inside a string stands for one quote.
                        if chars.get(j + 1).map(|&(_, n)| n) == Some(c) {
                            s.push(c);
                            j += 2;
                            continue;
                        }
                        closed = true;
                        break;
                    }
                    if let (true, Some(&(_, n))) = (ch == '\\' && c == '\'', chars.get(j + 1)) {
                        s.push(n);
                        j += 2;
                        continue;
                    }
                    s.push(ch);
                    j += 1;
                }
                if !closed {
                    return Err(bad(
                        input,
                        format!("unterminated quote starting at position {pos}"),
                    ));
                }
                out.push((
                    pos,
                    if c == '\'' {
                        Tok::Str(s)
                    } else {
                        Tok::Quoted(s)
                    },
                ));
                i = j + 1;
            }
            '<' | '>' | '=' | '!' => {
                let mut j = i;
                let mut op = String::new();
                while j < chars.len() && matches!(chars[j].1, '<' | '>' | '=' | '!') {
                    op.push(chars[j].1);
                    j += 1;
                }
                out.push((pos, Tok::Op(op)));
                i = j;
            }
            _ if c.is_ascii_digit()
                || (matches!(c, '-' | '+' | '.')
                    && next.is_some_and(|n| n.is_ascii_digit() || n == '.')) =>
            {
                let mut j = i + 1;
                while j < chars.len() {
                    let ch = chars[j].1;
                    let prev = chars[j - 1].1;
                    if ch.is_ascii_digit()
                        || ch == '.'
                        || ch == 'e'
                        || ch == 'E'
                        || ((ch == '-' || ch == '+') && (prev == 'e' || prev == 'E'))
                    {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let end = chars.get(j).map(|&(p, _)| p).unwrap_or(input.len());
                let text = &input[pos..end];
                let n: f64 = text.parse().map_err(|_| {
                    bad(input, format!("'{text}' at position {pos} is not a number"))
                })?;
                out.push((pos, Tok::Num(n)));
                i = j;
            }
            _ if c.is_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len() && is_word_char(chars[j].1) {
                    j += 1;
                }
                let end = chars.get(j).map(|&(p, _)| p).unwrap_or(input.len());
                out.push((pos, Tok::Word(input[pos..end].to_string())));
                i = j;
            }
            _ => {
                return Err(bad(
                    input,
                    format!("unexpected character '{c}' at position {pos}"),
                ));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    input: &'a str,
    toks: Vec<(usize, Tok)>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }
    fn pos(&self) -> usize {
        self.toks
            .get(self.at)
            .map(|(p, _)| *p)
            .unwrap_or(self.input.len())
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).map(|(_, t)| t.clone());
        self.at += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn err(&self, what: impl std::fmt::Display) -> Error {
        bad(self.input, format!("{what} at position {}", self.pos()))
    }

    /// `entity.key`, `entity."quoted key"`, `` `entity.key` ``, or a bare (possibly quoted) name.
    fn identifier(&mut self) -> Result<(Option<String>, String)> {
        match self.next() {
            Some(Tok::Word(w)) => {
                if let Some(entity) = w.strip_suffix('.') {
                    match self.next() {
                        Some(Tok::Quoted(k)) | Some(Tok::Str(k)) => {
                            Ok((Some(entity.to_string()), k))
                        }
                        _ => {
                            self.at -= 1;
                            Err(self.err(format!("expected a key after '{w}'")))
                        }
                    }
                } else if let Some((entity, key)) = w.split_once('.') {
                    Ok((Some(entity.to_string()), key.to_string()))
                } else {
                    Ok((None, w))
                }
            }
            Some(Tok::Quoted(q)) => match q.split_once('.') {
                Some((e, k)) if is_entity_word(e) => Ok((Some(e.to_string()), k.to_string())),
                _ => Ok((None, q)),
            },
            _ => {
                self.at -= 1;
                Err(self.err("expected an identifier such as metrics.<key>"))
            }
        }
    }

    fn operator(&mut self, ident: &str) -> Result<Op> {
        let op = match self.next() {
            Some(Tok::Op(o)) => match o.as_str() {
                "=" | "==" => Op::Eq,
                "!=" | "<>" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                other => {
                    self.at -= 1;
                    return Err(self.err(format!("'{other}' is not a comparison operator")));
                }
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("LIKE") => Op::Like,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("ILIKE") => Op::ILike,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IN") => Op::In,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => {
                if self.keyword("IN") {
                    self.at += 1;
                    Op::NotIn
                } else {
                    return Err(self.err("expected IN after NOT"));
                }
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IS") => {
                let negated = self.keyword("NOT");
                if negated {
                    self.at += 1;
                }
                if !self.keyword("NULL") {
                    return Err(self.err("expected NULL after IS"));
                }
                self.at += 1;
                if negated { Op::IsNotNull } else { Op::IsNull }
            }
            _ => {
                self.at -= 1;
                return Err(self.err(format!("expected a comparison operator after '{ident}'")));
            }
        };
        Ok(op)
    }

    fn value(&mut self, op: Op) -> Result<Value> {
        if matches!(op, Op::IsNull | Op::IsNotNull) {
            return Ok(Value::None);
        }
        if matches!(op, Op::In | Op::NotIn) {
            if self.next() != Some(Tok::LParen) {
                self.at -= 1;
                return Err(self.err(format!(
                    "{} takes a parenthesised list of quoted strings",
                    op.as_str()
                )));
            }
            let mut items = Vec::new();
            loop {
                match self.next() {
                    Some(Tok::Str(s)) | Some(Tok::Quoted(s)) => items.push(s),
                    _ => {
                        self.at -= 1;
                        return Err(self.err("expected a quoted string in the list"));
                    }
                }
                match self.next() {
                    Some(Tok::Comma) => continue,
                    Some(Tok::RParen) => break,
                    _ => {
                        self.at -= 1;
                        return Err(self.err("expected ',' or ')' in the list"));
                    }
                }
            }
            return Ok(Value::List(items));
        }
        match self.next() {
            Some(Tok::Num(n)) => Ok(Value::Number(n)),
            Some(Tok::Str(s)) | Some(Tok::Quoted(s)) => Ok(Value::Str(s)),
            _ => {
                self.at -= 1;
                Err(self.err("expected a value (a number or a quoted string)"))
            }
        }
    }
}

fn is_entity_word(e: &str) -> bool {
    matches!(
        e.to_ascii_lowercase().as_str(),
        "metric"
            | "metrics"
            | "param"
            | "params"
            | "parameter"
            | "parameters"
            | "tag"
            | "tags"
            | "attribute"
            | "attributes"
            | "attr"
            | "run"
            | "dataset"
            | "datasets"
    )
}

/// Parses a filter into comparisons. An empty or blank filter is no comparison at all.
pub fn parse(input: &str) -> Result<Vec<Comparison>> {
    let toks = tokenize(input)?;
    let mut p = Parser { input, toks, at: 0 };
    let mut out = Vec::new();
    if p.peek().is_none() {
        return Ok(out);
    }
    loop {
        let (entity, key) = p.identifier()?;
        let shown = match &entity {
            Some(e) => format!("{e}.{key}"),
            None => key.clone(),
        };
        let op = p.operator(&shown)?;
        let value = p.value(op)?;
        out.push(Comparison {
            entity,
            key,
            op,
            value,
        });
        match p.peek() {
            None => break,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("AND") => {
                p.at += 1;
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("OR") => {
                return Err(p.err("OR is not supported; join comparisons with AND"));
            }
            Some(_) => return Err(p.err("expected AND between comparisons")),
        }
    }
    Ok(out)
}

/// One `order_by` item: `identifier [ASC|DESC]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderTerm {
    pub entity: Option<String>,
    pub key: String,
    pub ascending: bool,
}

/// Parses an `order_by` clause such as `metrics.rmse DESC`.
pub fn parse_order_by(input: &str) -> Result<OrderTerm> {
    let err = |what: &str| Error::invalid(format!("Invalid order_by clause '{input}': {what}"));
    let toks = tokenize(input).map_err(|_| err("could not parse it"))?;
    let mut p = Parser { input, toks, at: 0 };
    let (entity, key) = p.identifier().map_err(|_| err("expected an identifier"))?;
    let ascending = match p.next() {
        None => true,
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("ASC") => true,
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("DESC") => false,
        Some(_) => return Err(err("expected ASC or DESC after the identifier")),
    };
    if p.peek().is_some() {
        return Err(err("unexpected text after ASC/DESC"));
    }
    Ok(OrderTerm {
        entity,
        key,
        ascending,
    })
}

/// Checks that `op` is one of `allowed`, naming the identifier otherwise.
pub fn check_op(ident: &str, op: Op, allowed: &[Op]) -> Result<()> {
    if allowed.contains(&op) {
        Ok(())
    } else {
        let names: Vec<&str> = allowed.iter().map(|o| o.as_str()).collect();
        Err(Error::invalid(format!(
            "Invalid comparator '{}' for '{ident}': expected one of {}",
            op.as_str(),
            names.join(", ")
        )))
    }
}

/// Operators for numbers (metrics, numeric attributes).
pub const NUMERIC_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];
/// Operators for params and tags.
pub const KV_OPS: &[Op] = &[
    Op::Eq,
    Op::Ne,
    Op::Like,
    Op::ILike,
    Op::IsNull,
    Op::IsNotNull,
];
/// Operators for string attributes and dataset fields.
pub const STRING_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Like, Op::ILike, Op::In, Op::NotIn];

/// The number a numeric comparison carries.
pub fn expect_number(ident: &str, v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => Ok(*n),
        _ => Err(Error::invalid(format!(
            "Expected a numeric value for '{ident}', got {}",
            describe(v)
        ))),
    }
}

/// The string a string comparison carries.
pub fn expect_string(ident: &str, v: &Value) -> Result<String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(Error::invalid(format!(
            "Expected a quoted string value for '{ident}', got {}",
            describe(v)
        ))),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("the number {n}"),
        Value::Str(s) => format!("the string '{s}'"),
        Value::List(l) => format!("a list of {} items", l.len()),
        Value::None => "nothing".into(),
    }
}

/// A typed comparison: the search kind has resolved the identifier to `K`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause<K> {
    pub key: K,
    pub op: Op,
    pub value: Value,
}

/// A typed order term.
#[derive(Debug, Clone, PartialEq)]
pub struct Order<K> {
    pub key: K,
    pub ascending: bool,
}

fn ident_text(entity: &Option<String>, key: &str) -> String {
    match entity {
        Some(e) => format!("{e}.{key}"),
        None => key.to_string(),
    }
}

/// Checks a value against the operator's needs and the field kind.
fn typed_value(ident: &str, op: Op, v: Value, numeric: bool) -> Result<Value> {
    match op {
        Op::In | Op::NotIn | Op::IsNull | Op::IsNotNull => Ok(v),
        _ if numeric => Ok(Value::Number(expect_number(ident, &v)?)),
        _ => Ok(Value::Str(expect_string(ident, &v)?)),
    }
}

/// Run search: metrics, params, tags, attributes and datasets.
pub mod runs {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Key {
        Metric(String),
        Param(String),
        Tag(String),
        Attr(Attr),
        Dataset(DatasetField),
    }

    /// Searchable run attributes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Attr {
        RunId,
        RunName,
        UserId,
        Status,
        ArtifactUri,
        StartTime,
        EndTime,
        ExperimentId,
    }

    impl Attr {
        pub fn is_numeric(self) -> bool {
            matches!(self, Attr::StartTime | Attr::EndTime)
        }
        fn parse(k: &str) -> Option<Attr> {
            Some(match k {
                "run_id" => Attr::RunId,
                "run_name" | "run name" | "Run name" | "Run Name" => Attr::RunName,
                "user_id" => Attr::UserId,
                "status" => Attr::Status,
                "artifact_uri" => Attr::ArtifactUri,
                "start_time" | "created" | "Created" => Attr::StartTime,
                "end_time" => Attr::EndTime,
                "experiment_id" => Attr::ExperimentId,
                _ => return None,
            })
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum DatasetField {
        Name,
        Digest,
        Context,
    }

    fn resolve(entity: &Option<String>, key: &str) -> Result<Key> {
        let ident = ident_text(entity, key);
        let e = entity.as_deref().map(str::to_ascii_lowercase);
        Ok(match e.as_deref() {
            Some("metric" | "metrics") => Key::Metric(key.to_string()),
            Some("param" | "params" | "parameter" | "parameters") => Key::Param(key.to_string()),
            Some("tag" | "tags") => Key::Tag(key.to_string()),
            None | Some("attribute" | "attributes" | "attr" | "run") => Key::Attr(Attr::parse(key).ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid attribute key '{ident}': expected one of run_id, run_name, user_id, status, artifact_uri, start_time, end_time"
                ))
            })?),
            Some("dataset" | "datasets") => Key::Dataset(match key {
                "name" => DatasetField::Name,
                "digest" => DatasetField::Digest,
                "context" => DatasetField::Context,
                _ => return Err(Error::invalid(format!("Invalid dataset key '{ident}': expected name, digest or context"))),
            }),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "Invalid entity type '{other}' in '{ident}': expected metrics, params, tags, attributes or datasets"
                )));
            }
        })
    }

    /// Parses and checks a run-search filter.
    pub fn parse_filter(filter: &str) -> Result<Vec<Clause<Key>>> {
        let mut out = Vec::new();
        for c in parse(filter)? {
            let ident = ident_text(&c.entity, &c.key);
            let key = resolve(&c.entity, &c.key)?;
            let (ops, numeric) = match &key {
                Key::Metric(_) => (NUMERIC_OPS, true),
                Key::Param(_) | Key::Tag(_) => (KV_OPS, false),
                Key::Attr(a) if a.is_numeric() => (NUMERIC_OPS, true),
                Key::Attr(Attr::RunId) => (STRING_OPS, false),
                Key::Attr(_) => (&[Op::Eq, Op::Ne, Op::Like, Op::ILike][..], false),
                Key::Dataset(_) => (STRING_OPS, false),
            };
            check_op(&ident, c.op, ops)?;
            let value = typed_value(&ident, c.op, c.value, numeric)?;
            out.push(Clause {
                key,
                op: c.op,
                value,
            });
        }
        Ok(out)
    }

    /// Parses and checks one run-search `order_by` item.
    pub fn parse_order(s: &str) -> Result<Order<Key>> {
        let t = parse_order_by(s)?;
        let key = if t.entity.is_none() && t.key == "timestamp" {
            Key::Attr(Attr::StartTime)
        } else {
            resolve(&t.entity, &t.key)?
        };
        if matches!(key, Key::Dataset(_)) {
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{s}': datasets cannot order runs"
            )));
        }
        Ok(Order {
            key,
            ascending: t.ascending,
        })
    }
}

/// Experiment search: `name`, `creation_time`, `last_update_time`, `tags.<key>`.
pub mod experiments {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Key {
        Name,
        CreationTime,
        LastUpdateTime,
        Tag(String),
    }

    fn resolve(entity: &Option<String>, key: &str) -> Result<Key> {
        let e = entity.as_deref().map(str::to_ascii_lowercase);
        Ok(match (e.as_deref(), key) {
            (Some("tag" | "tags"), k) => Key::Tag(k.to_string()),
            (None | Some("attribute" | "attributes" | "attr"), "name") => Key::Name,
            (None | Some("attribute" | "attributes" | "attr"), "creation_time") => {
                Key::CreationTime
            }
            (None | Some("attribute" | "attributes" | "attr"), "last_update_time") => {
                Key::LastUpdateTime
            }
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid experiment search key '{}': expected name, creation_time, last_update_time or tags.<key>",
                    ident_text(entity, key)
                )));
            }
        })
    }

    pub fn parse_filter(filter: &str) -> Result<Vec<Clause<Key>>> {
        parse(filter)?
            .into_iter()
            .map(|c| {
                let ident = ident_text(&c.entity, &c.key);
                let key = resolve(&c.entity, &c.key)?;
                let (ops, numeric) = match key {
                    Key::Name => (&[Op::Eq, Op::Ne, Op::Like, Op::ILike][..], false),
                    Key::Tag(_) => (KV_OPS, false),
                    _ => (NUMERIC_OPS, true),
                };
                check_op(&ident, c.op, ops)?;
                let value = typed_value(&ident, c.op, c.value, numeric)?;
                Ok(Clause {
                    key,
                    op: c.op,
                    value,
                })
            })
            .collect()
    }

    pub fn parse_order(s: &str) -> Result<Order<Key>> {
        let t = parse_order_by(s)?;
        let key = resolve(&t.entity, &t.key)?;
        if matches!(key, Key::Tag(_)) {
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{s}': experiments order by name, creation_time or last_update_time"
            )));
        }
        Ok(Order {
            key,
            ascending: t.ascending,
        })
    }
}

/// Registered-model and model-version search.
pub mod registry {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Key {
        Name,
        Tag(String),
        /// Model versions only.
        RunId,
        SourcePath,
        VersionNumber,
        CreationTimestamp,
        LastUpdatedTimestamp,
    }

    fn resolve(entity: &Option<String>, key: &str, versions: bool) -> Result<Key> {
        let e = entity.as_deref().map(str::to_ascii_lowercase);
        let attr = matches!(
            e.as_deref(),
            None | Some("attribute" | "attributes" | "attr")
        );
        Ok(match (e.as_deref(), key) {
            (Some("tag" | "tags"), k) => Key::Tag(k.to_string()),
            (_, "name") if attr => Key::Name,
            (_, "run_id") if attr && versions => Key::RunId,
            (_, "source_path") if attr && versions => Key::SourcePath,
            (_, "version_number") if attr && versions => Key::VersionNumber,
            (_, "creation_timestamp" | "timestamp") if attr => Key::CreationTimestamp,
            (_, "last_updated_timestamp") if attr => Key::LastUpdatedTimestamp,
            _ => {
                let allowed = if versions {
                    "name, run_id, source_path, version_number or tags.<key>"
                } else {
                    "name or tags.<key>"
                };
                return Err(Error::invalid(format!(
                    "Invalid search key '{}': expected {allowed}",
                    ident_text(entity, key)
                )));
            }
        })
    }

    /// Parses a registered-model (`versions = false`) or model-version filter.
    pub fn parse_filter(filter: &str, versions: bool) -> Result<Vec<Clause<Key>>> {
        parse(filter)?
            .into_iter()
            .map(|c| {
                let ident = ident_text(&c.entity, &c.key);
                let key = resolve(&c.entity, &c.key, versions)?;
                let (ops, numeric) = match key {
                    Key::Name => (&[Op::Eq, Op::Ne, Op::Like, Op::ILike][..], false),
                    Key::Tag(_) => (KV_OPS, false),
                    Key::RunId => (&[Op::Eq, Op::Ne, Op::In, Op::NotIn][..], false),
                    Key::SourcePath => (&[Op::Eq, Op::Ne, Op::Like, Op::ILike][..], false),
                    _ => (NUMERIC_OPS, true),
                };
                check_op(&ident, c.op, ops)?;
                let value = typed_value(&ident, c.op, c.value, numeric)?;
                Ok(Clause {
                    key,
                    op: c.op,
                    value,
                })
            })
            .collect()
    }

    /// Parses a registry `order_by` item; `timestamp` means the last update, as in MLflow.
    pub fn parse_order(s: &str, versions: bool) -> Result<Order<Key>> {
        let t = parse_order_by(s)?;
        let key = match (&t.entity, t.key.as_str()) {
            (None, "timestamp") => Key::LastUpdatedTimestamp,
            _ => resolve(&t.entity, &t.key, versions)?,
        };
        if matches!(key, Key::Tag(_) | Key::RunId | Key::SourcePath) {
            return Err(Error::invalid(format!("Invalid order_by clause '{s}'")));
        }
        Ok(Order {
            key,
            ascending: t.ascending,
        })
    }
}

/// Logged-model search: attributes, `metrics.<key>`, `params.<key>`, `tags.<key>`.
pub mod logged_models {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Key {
        ModelId,
        Name,
        Status,
        ModelType,
        SourceRunId,
        CreationTimestamp,
        LastUpdatedTimestamp,
        Metric(String),
        Param(String),
        Tag(String),
    }

    pub fn resolve(entity: &Option<String>, key: &str) -> Result<Key> {
        let e = entity.as_deref().map(str::to_ascii_lowercase);
        Ok(match e.as_deref() {
            Some("metric" | "metrics") => Key::Metric(key.to_string()),
            Some("param" | "params" | "parameter" | "parameters") => Key::Param(key.to_string()),
            Some("tag" | "tags") => Key::Tag(key.to_string()),
            None | Some("attribute" | "attributes" | "attr") => match key {
                "model_id" => Key::ModelId,
                "name" => Key::Name,
                "status" => Key::Status,
                "model_type" => Key::ModelType,
                "source_run_id" => Key::SourceRunId,
                "creation_timestamp" | "creation_time" | "creation_timestamp_ms" => {
                    Key::CreationTimestamp
                }
                "last_updated_timestamp" | "last_updated_timestamp_ms" => Key::LastUpdatedTimestamp,
                _ => {
                    return Err(Error::invalid(format!(
                        "Invalid logged model attribute '{key}'"
                    )));
                }
            },
            Some(other) => {
                return Err(Error::invalid(format!(
                    "Invalid entity type '{other}' in '{}'",
                    ident_text(entity, key)
                )));
            }
        })
    }

    pub fn parse_filter(filter: &str) -> Result<Vec<Clause<Key>>> {
        parse(filter)?
            .into_iter()
            .map(|c| {
                let ident = ident_text(&c.entity, &c.key);
                let key = resolve(&c.entity, &c.key)?;
                let (ops, numeric) = match key {
                    Key::Metric(_) | Key::CreationTimestamp | Key::LastUpdatedTimestamp => {
                        (NUMERIC_OPS, true)
                    }
                    Key::Param(_) | Key::Tag(_) => (KV_OPS, false),
                    _ => (STRING_OPS, false),
                };
                check_op(&ident, c.op, ops)?;
                let value = typed_value(&ident, c.op, c.value, numeric)?;
                Ok(Clause {
                    key,
                    op: c.op,
                    value,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms() {
        let c = parse("metrics.m0 > 0.5 and params.p1 = 'v3' AND tags.`a-b` LIKE 'x%'").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].entity.as_deref(), Some("metrics"));
        assert_eq!(c[0].op, Op::Gt);
        assert_eq!(c[0].value, Value::Number(0.5));
        assert_eq!(c[1].value, Value::Str("v3".into()));
        assert_eq!(c[2].key, "a-b");
        let q = parse(r#"metrics."model class" <= -1e-3"#).unwrap();
        assert_eq!(q[0].key, "model class");
        assert_eq!(q[0].value, Value::Number(-1e-3));
        let l = parse("attributes.run_id IN ('a', 'b') and status != 'FAILED'").unwrap();
        assert_eq!(l[0].value, Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(l[1].entity, None);
        assert!(parse("   ").unwrap().is_empty());
        let n = parse("params.p IS NOT NULL").unwrap();
        assert_eq!(n[0].op, Op::IsNotNull);
    }

    #[test]
    fn bad_filters_point_at_the_problem() {
        let e = parse("metrics.m0 >>> 1").unwrap_err();
        assert!(e.message.contains("'>>>'"), "{}", e.message);
        let e = parse("metrics.a > 1 or metrics.b > 2").unwrap_err();
        assert!(e.message.contains("OR"), "{}", e.message);
        let e = parse("params.p = 'open").unwrap_err();
        assert!(e.message.contains("unterminated"), "{}", e.message);
        let e = runs::parse_filter("metrics.a = 'x'").unwrap_err();
        assert!(e.message.contains("numeric"), "{}", e.message);
        let e = runs::parse_filter("params.a > 'x'").unwrap_err();
        assert!(e.message.contains("comparator"), "{}", e.message);
        let e = runs::parse_filter("foo.a = 'x'").unwrap_err();
        assert!(e.message.contains("entity"), "{}", e.message);
        let e = runs::parse_filter("metrics.a > 1 metrics.b > 1").unwrap_err();
        assert!(e.message.contains("AND"), "{}", e.message);
    }

    #[test]
    fn order_by_terms() {
        let o = runs::parse_order("metrics.rmse DESC").unwrap();
        assert_eq!(o.key, runs::Key::Metric("rmse".into()));
        assert!(!o.ascending);
        let o = runs::parse_order("start_time").unwrap();
        assert_eq!(o.key, runs::Key::Attr(runs::Attr::StartTime));
        let e = runs::parse_order("metrics.x SIDEWAYS")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Invalid order_by clause"), "{e}");
    }
}
