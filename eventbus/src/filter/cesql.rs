//! A subset of CloudEvents SQL (CESQL v1) for trigger filters: literals
//! (strings, integers, `TRUE`/`FALSE`), attribute names, comparisons
//! (`=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`), `AND`/`OR`/`XOR`/`NOT`, `LIKE`
//! (`%`, `_`, `\` escapes), `EXISTS`, `IN (...)` and parentheses.
//!
//! Evaluation follows the spec's implicit casts: a comparison with a boolean
//! casts the other side to boolean (`'true'`/`'false'`, any case), one with an
//! integer casts to integer, order comparisons are on integers, `LIKE` on
//! strings. A failed cast or a missing attribute is an error, and an
//! expression with an error does not match (as in Knative); `EXISTS` is the
//! way to test for an attribute.

use super::Attributes;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    Attr(String),
    Exists(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Xor(Box<Expr>, Box<Expr>),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    Like { value: Box<Expr>, pattern: String, negated: bool },
    In { value: Box<Expr>, set: Vec<Expr>, negated: bool },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at character {at}")]
pub struct ParseError {
    pub message: String,
    pub at: usize,
}

/// Why an expression has no value for an event.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    Missing(String),
    Cast(String),
}

// === lexing ===

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Minus,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |message: &str, at: usize| ParseError { message: message.to_string(), at };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' | ',' | '-' => {
                out.push((
                    match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        ',' => Tok::Comma,
                        _ => Tok::Minus,
                    },
                    start,
                ));
                i += 1;
            }
            '\'' | '"' => {
                let (s, end) = lex_string(&chars, i).ok_or_else(|| err("unterminated string", start))?;
                out.push((Tok::Str(s), start));
                i = end;
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "!=" => "!=",
                    "<>" => "<>",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ => match c {
                        '=' => "=",
                        '<' => "<",
                        '>' => ">",
                        _ => return Err(err("'!' must be followed by '='", start)),
                    },
                };
                i += op.len();
                out.push((Tok::Op(op), start));
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse().map_err(|_| err("integer out of range", start))?;
                out.push((Tok::Int(n), start));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push((Tok::Ident(chars[start..i].iter().collect()), start));
            }
            _ => return Err(err(&format!("unexpected character {c:?}"), start)),
        }
    }
    Ok(out)
}

/// A quoted string starting at `i`; returns it and the index after the quote.
fn lex_string(chars: &[char], i: usize) -> Option<(String, usize)> {
    let quote = chars[i];
    let mut s = String::new();
    let mut j = i + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' if j + 1 < chars.len() => {
                s.push(chars[j + 1]);
                j += 2;
            }
            c if c == quote => return Some((s, j + 1)),
            c => {
                s.push(c);
                j += 1;
            }
        }
    }
    None
}

// === parsing: or > xor > and > not > comparison > primary ===

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    len: usize,
}

/// Parses a CESQL expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { toks: lex(src)?, pos: 0, len: src.chars().count() };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(p.error(&format!("unexpected {}", describe(t)))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("word {s:?}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Int(n) => format!("number {n}"),
        Tok::Op(o) => format!("operator {o:?}"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Minus => "'-'".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn error(&self, message: &str) -> ParseError {
        ParseError { message: message.to_string(), at: self.toks.get(self.pos).map_or(self.len, |(_, at)| *at) }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            return Ok(());
        }
        Err(self.error(&format!("expected {what}")))
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.chain("OR", Self::xor, Expr::Or)
    }

    fn xor(&mut self) -> Result<Expr, ParseError> {
        self.chain("XOR", Self::and, Expr::Xor)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        self.chain("AND", Self::not, Expr::And)
    }

    /// `next (kw next)*`, joined left to right.
    fn chain(
        &mut self,
        kw: &str,
        next: fn(&mut Self) -> Result<Expr, ParseError>,
        join: fn(Box<Expr>, Box<Expr>) -> Expr,
    ) -> Result<Expr, ParseError> {
        let mut e = next(self)?;
        while self.keyword(kw) {
            e = join(Box::new(e), Box::new(next(self)?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.primary()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let cmp = match op {
                "=" => Cmp::Eq,
                "!=" | "<>" => Cmp::Ne,
                "<" => Cmp::Lt,
                "<=" => Cmp::Le,
                ">" => Cmp::Gt,
                _ => Cmp::Ge,
            };
            return Ok(Expr::Cmp(cmp, Box::new(left), Box::new(self.primary()?)));
        }
        let save = self.pos;
        let negated = self.keyword("NOT");
        if self.keyword("LIKE") {
            let pattern = match self.peek().cloned() {
                Some(Tok::Str(s)) => s,
                _ => return Err(self.error("LIKE needs a string pattern")),
            };
            self.pos += 1;
            return Ok(Expr::Like { value: Box::new(left), pattern, negated });
        }
        if self.keyword("IN") {
            self.expect(Tok::LParen, "'(' after IN")?;
            let mut set = vec![self.primary()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                set.push(self.primary()?);
            }
            self.expect(Tok::RParen, "')' to close IN")?;
            return Ok(Expr::In { value: Box::new(left), set, negated });
        }
        if negated {
            self.pos = save;
            return Err(self.error("NOT here must be followed by LIKE or IN"));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.error("expression ends too early"));
        };
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok(Expr::Lit(Value::Str(s))),
            Tok::Int(n) => Ok(Expr::Lit(Value::Int(n))),
            Tok::Minus => match self.peek().cloned() {
                Some(Tok::Int(n)) => {
                    self.pos += 1;
                    Ok(Expr::Lit(Value::Int(-n)))
                }
                _ => Err(self.error("'-' must be followed by a number")),
            },
            Tok::LParen => {
                let e = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("TRUE") => Ok(Expr::Lit(Value::Bool(true))),
            Tok::Ident(w) if w.eq_ignore_ascii_case("FALSE") => Ok(Expr::Lit(Value::Bool(false))),
            Tok::Ident(w) if w.eq_ignore_ascii_case("EXISTS") => match self.peek().cloned() {
                Some(Tok::Ident(name)) => {
                    self.pos += 1;
                    Ok(Expr::Exists(name.to_lowercase()))
                }
                _ => Err(self.error("EXISTS needs an attribute name")),
            },
            Tok::Ident(w) if is_keyword(&w) => {
                self.pos -= 1;
                Err(self.error(&format!("unexpected keyword {}", w.to_uppercase())))
            }
            Tok::Ident(name) => Ok(Expr::Attr(name.to_lowercase())),
            other => {
                self.pos -= 1;
                Err(self.error(&format!("unexpected {}", describe(&other))))
            }
        }
    }
}

fn is_keyword(w: &str) -> bool {
    ["AND", "OR", "XOR", "NOT", "LIKE", "IN"].iter().any(|k| w.eq_ignore_ascii_case(k))
}

// === evaluation ===

impl Expr {
    /// Whether the event passes: the value is true (errors do not pass).
    pub fn matches(&self, event: &impl Attributes) -> bool {
        matches!(self.eval(event).and_then(to_bool), Ok(true))
    }

    pub fn eval(&self, event: &impl Attributes) -> Result<Value, EvalError> {
        Ok(match self {
            Expr::Lit(v) => v.clone(),
            Expr::Attr(name) => {
                Value::Str(event.attribute(name).ok_or_else(|| EvalError::Missing(name.clone()))?.into_owned())
            }
            Expr::Exists(name) => Value::Bool(event.attribute(name).is_some()),
            Expr::Not(e) => Value::Bool(!to_bool(e.eval(event)?)?),
            Expr::And(a, b) => Value::Bool(to_bool(a.eval(event)?)? && to_bool(b.eval(event)?)?),
            Expr::Or(a, b) => Value::Bool(to_bool(a.eval(event)?)? || to_bool(b.eval(event)?)?),
            Expr::Xor(a, b) => Value::Bool(to_bool(a.eval(event)?)? ^ to_bool(b.eval(event)?)?),
            Expr::Cmp(op, a, b) => Value::Bool(compare(*op, a.eval(event)?, b.eval(event)?)?),
            Expr::Like { value, pattern, negated } => {
                let s = to_string(value.eval(event)?);
                Value::Bool(like(&s, pattern) != *negated)
            }
            Expr::In { value, set, negated } => {
                let v = value.eval(event)?;
                let mut found = false;
                for item in set {
                    found |= compare(Cmp::Eq, v.clone(), item.eval(event)?)?;
                }
                Value::Bool(found != *negated)
            }
        })
    }
}

fn compare(op: Cmp, a: Value, b: Value) -> Result<bool, EvalError> {
    use std::cmp::Ordering;
    let ord: Ordering = match (op, &a, &b) {
        (Cmp::Eq | Cmp::Ne, Value::Bool(_), _) | (Cmp::Eq | Cmp::Ne, _, Value::Bool(_)) => {
            to_bool(a)?.cmp(&to_bool(b)?)
        }
        (Cmp::Eq | Cmp::Ne, Value::Str(x), Value::Str(y)) => x.cmp(y),
        _ => to_int(a)?.cmp(&to_int(b)?),
    };
    Ok(match op {
        Cmp::Eq => ord == Ordering::Equal,
        Cmp::Ne => ord != Ordering::Equal,
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Ge => ord != Ordering::Less,
    })
}

fn to_bool(v: Value) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::Str(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::Str(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(EvalError::Cast(format!("{other} is not a boolean"))),
    }
}

fn to_int(v: Value) -> Result<i64, EvalError> {
    match v {
        Value::Int(n) => Ok(n),
        Value::Str(s) => s.trim().parse().map_err(|_| EvalError::Cast(format!("{s:?} is not an integer"))),
        Value::Bool(b) => Err(EvalError::Cast(format!("{b} is not an integer"))),
    }
}

fn to_string(v: Value) -> String {
    match v {
        Value::Str(s) => s,
        other => other.to_string(),
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{}", if *b { "true" } else { "false" }),
        }
    }
}

/// SQL `LIKE`: `%` any run of characters, `_` exactly one, `\` escapes the next.
pub fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    like_at(&s, &p)
}

fn like_at(s: &[char], p: &[char]) -> bool {
    // Iterative wildcard match with backtracking to the last '%'.
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some('%') => {
                star = Some((pi + 1, si));
                pi += 1;
                continue;
            }
            Some('_') => {
                si += 1;
                pi += 1;
                continue;
            }
            Some('\\') if p.get(pi + 1) == Some(&s[si]) => {
                si += 1;
                pi += 2;
                continue;
            }
            Some(c) if *c != '\\' && *c == s[si] => {
                si += 1;
                pi += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, ss)) => {
                pi = sp;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}
