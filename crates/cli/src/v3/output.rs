//! Output as etcdctl 3.4 writes it: `-w simple` (its `printKV` lines, `--hex` as `\x61`) and
//! `-w json` (Go's `encoding/json` over the gogoproto structs: the proto names as JSON keys,
//! 64-bit integers as numbers, bytes as base64, zero values left out where the Go field is
//! `omitempty`).

use super::failure::{EXIT_BAD_FEATURE, Failure};
use clap::ValueEnum;
use musubi_gocompat::base64;
use musubi_proto::etcdserverpb::ResponseHeader;
use musubi_proto::mvccpb::KeyValue;
use serde_json::{Map, Value};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Simple,
    Json,
    Fields,
    Table,
    Protobuf,
}

#[derive(Clone, Copy)]
pub struct Out {
    pub format: Format,
    pub hex: bool,
}

impl Out {
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// etcdctl's `printKV`: the key (unless values only), then the value, a line each.
    pub fn kv(&self, kv: &KeyValue, value_only: bool) {
        if !value_only {
            println!("{}", self.bytes(&kv.key));
        }
        println!("{}", self.bytes(&kv.value));
    }

    /// A key or value as text, or with `--hex` as `\x..` per byte.
    pub fn bytes(&self, b: &[u8]) -> String {
        if self.hex {
            b.iter().map(|c| format!("\\x{c:02x}")).collect()
        } else {
            String::from_utf8_lossy(b).into_owned()
        }
    }

    /// etcdctl's refusal of a format the command's printer lacks; as there, it comes after
    /// the command's request (a write is done, its reply not shown).
    pub fn unsupported(&self) -> Failure {
        let name = match self.format {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        };
        Failure::new(
            EXIT_BAD_FEATURE,
            format!("{name} not supported as output format"),
        )
    }

    /// For a command with simple and json shapes only.
    pub fn simple_or_json(&self) -> Result<(), Failure> {
        match self.format {
            Format::Simple | Format::Json => Ok(()),
            _ => Err(self.unsupported()),
        }
    }

    /// For a command that has a fields shape too: prints it and says so (true), or refuses
    /// table and protobuf; false for simple and json, which the caller prints.
    pub fn fields(&self, print: impl FnOnce()) -> Result<bool, Failure> {
        match self.format {
            Format::Simple | Format::Json => Ok(false),
            Format::Fields => {
                print();
                Ok(true)
            }
            _ => Err(self.unsupported()),
        }
    }
}

/// A JSON object built field by field in the Go struct's order.
#[derive(Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }

    /// Always written (a Go field without `omitempty`).
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Obj {
        self.0.insert(name.to_string(), value.into());
        self
    }

    /// An `omitempty` integer: left out when zero.
    pub fn int(self, name: &str, value: impl Into<i128>) -> Obj {
        let value: i128 = value.into();
        if value == 0 {
            return self;
        }
        let value = match i64::try_from(value) {
            Ok(v) => Value::from(v),
            Err(_) => Value::from(value as u64),
        };
        self.field(name, value)
    }

    pub fn boolean(self, name: &str, value: bool) -> Obj {
        if value { self.field(name, true) } else { self }
    }

    pub fn string(self, name: &str, value: &str) -> Obj {
        if value.is_empty() {
            self
        } else {
            self.field(name, value)
        }
    }

    /// `omitempty` bytes: base64, left out when empty.
    pub fn bytes(self, name: &str, value: &[u8]) -> Obj {
        if value.is_empty() {
            self
        } else {
            self.field(name, base64::encode(value))
        }
    }

    /// `omitempty` list: left out when empty.
    pub fn list(self, name: &str, values: Vec<Value>) -> Obj {
        if values.is_empty() {
            self
        } else {
            self.field(name, values)
        }
    }

    /// `omitempty` pointer: left out when None.
    pub fn opt(self, name: &str, value: Option<Value>) -> Obj {
        match value {
            Some(v) => self.field(name, v),
            None => self,
        }
    }

    /// A Go struct embedding `*ResponseHeader`: its fields at this level.
    pub fn flat_header(self, header: &Option<ResponseHeader>) -> Obj {
        let h = (*header).unwrap_or_default();
        self.int("cluster_id", h.cluster_id)
            .int("member_id", h.member_id)
            .int("revision", h.revision)
            .int("raft_term", h.raft_term)
    }

    pub fn header(self, header: &Option<ResponseHeader>) -> Obj {
        self.opt("header", header.as_ref().map(header_json))
    }

    pub fn value(self) -> Value {
        Value::Object(self.0)
    }
}

pub fn header_json(h: &ResponseHeader) -> Value {
    Obj::new().flat_header(&Some(*h)).value()
}

pub fn kv_json(kv: &KeyValue) -> Value {
    Obj::new()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .value()
}

pub fn kvs_json(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter().map(kv_json).collect()
}

/// One line of Go-encoded JSON on stdout (`<`, `>`, `&` escaped as Go does).
pub fn print_json(value: Value) {
    let text = serde_json::to_string(&value).expect("JSON values serialise");
    println!("{}", musubi_gocompat::json::escape_html(&text));
}
