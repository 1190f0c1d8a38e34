//! The op declarations (src/ops/<family>.ops) and the code generated from them: the C
//! prototypes the shim's definitions compile against, the Rust wrappers of the core crate
//! and the NIFs of the native crate. Emily.Native (lib/emily/native.ex) reads the same
//! files for its stubs. Used by build.rs.
//!
//! A declaration file holds, line by line:
//!
//! ```text
//! //! family documentation (any number of lines)
//! /// an enum's or an op's documentation (at least one line for an op)
//! enum pad_mode = constant | edge
//! [cpu] name(arg: kind, ...) -> array | arrays
//! ```
//!
//! Kinds: `array`, `arrays` (a list; also "zero or one" for optional arrays), `ints` (a
//! list of integers: shapes, axes), `int` (64-bit), `float` (double), `bool`, `dtype`, or
//! an enum of the same file (an atom in Elixir, a `#[repr(i32)]` enum in Rust, an
//! `int32_t`-based enum in C++). `[cpu]`: the NIF builds the op on the worker's CPU stream
//! (MLX runs it only there). Every op takes the stream first in C and last elsewhere.
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Array,
    Arrays,
    Ints,
    Int,
    Float,
    Bool,
    Dtype,
    Enum(String),
}

#[derive(Debug)]
pub struct EnumDecl {
    pub name: String,
    pub doc: Vec<String>,
    pub values: Vec<String>,
}

#[derive(Debug)]
pub struct Op {
    pub name: String,
    pub doc: Vec<String>,
    pub args: Vec<(String, Kind)>,
    pub many: bool,
    pub cpu: bool,
}

#[derive(Debug)]
pub struct Family {
    pub name: String,
    pub doc: Vec<String>,
    pub enums: Vec<EnumDecl>,
    pub ops: Vec<Op>,
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('a'..='z')) && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

// Names the generated Rust or C cannot use as function or argument names.
const RESERVED: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
    "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "env", "s", "out", "outs", "int",
    "double", "char", "default", "case", "switch", "do", "end", "when", "not", "and", "or", "worker",
];

pub fn parse(family: &str, text: &str, file: &str) -> Result<Family, String> {
    let mut fam = Family { name: family.to_string(), doc: vec![], enums: vec![], ops: vec![] };
    let mut doc: Vec<String> = vec![];
    // (line, op without its arguments, the arguments' names and kind names)
    type Pending = (usize, Op, Vec<(String, String)>);
    let mut pending_ops: Vec<Pending> = vec![];
    for (i, raw) in text.lines().enumerate() {
        let at = |msg: String| format!("{file}:{}: {msg}", i + 1);
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix("//!") {
            fam.doc.push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
        } else if let Some(rest) = line.strip_prefix("///") {
            doc.push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
        } else if line.is_empty() || line.starts_with("//") {
            if !doc.is_empty() && line.is_empty() {
                return Err(at("a `///` comment must be followed by its declaration".into()));
            }
        } else if let Some(rest) = line.strip_prefix("enum ") {
            let (name, values) = rest.split_once('=').ok_or_else(|| at("expected `enum name = a | b`".into()))?;
            let name = name.trim().to_string();
            let values: Vec<String> = values.split('|').map(|v| v.trim().to_string()).collect();
            if !is_ident(&name) || values.iter().any(|v| !is_ident(v)) {
                return Err(at(format!("enum `{name}`: names are lower-case identifiers")));
            }
            fam.enums.push(EnumDecl { name, doc: std::mem::take(&mut doc), values });
        } else {
            let (cpu, decl) = match line.strip_prefix("[cpu]") {
                Some(d) => (true, d.trim()),
                None => (false, line),
            };
            let (head, ret) = decl.rsplit_once("->").ok_or_else(|| at("expected `name(args) -> array`".into()))?;
            let many = match ret.trim() {
                "array" => false,
                "arrays" => true,
                r => return Err(at(format!("returns `array` or `arrays`, not `{r}`"))),
            };
            let head = head.trim();
            let (name, args) = head
                .strip_suffix(')')
                .and_then(|h| h.split_once('('))
                .ok_or_else(|| at("expected `name(arg: kind, ...)`".into()))?;
            let name = name.trim().to_string();
            if !is_ident(&name) || RESERVED.contains(&name.as_str()) {
                return Err(at(format!("`{name}` cannot be an op's name")));
            }
            if doc.is_empty() {
                return Err(at(format!("`{name}` needs a `///` line saying what it computes")));
            }
            let mut parsed = vec![];
            for a in args.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                let (n, k) = a.split_once(':').ok_or_else(|| at(format!("`{a}`: expected `name: kind`")))?;
                let (n, k) = (n.trim().to_string(), k.trim().to_string());
                if !is_ident(&n) || RESERVED.contains(&n.as_str()) || parsed.iter().any(|(p, _)| p == &n) {
                    return Err(at(format!("`{name}`: `{n}` cannot be an argument's name")));
                }
                parsed.push((n, k));
            }
            let op = Op { name, doc: std::mem::take(&mut doc), args: vec![], many, cpu };
            pending_ops.push((i + 1, op, parsed));
        }
    }
    if !doc.is_empty() {
        return Err(format!("{file}: a `///` comment at the end of the file"));
    }
    for (line, mut op, args) in pending_ops {
        for (n, k) in args {
            let kind = match k.as_str() {
                "array" => Kind::Array,
                "arrays" => Kind::Arrays,
                "ints" => Kind::Ints,
                "int" => Kind::Int,
                "float" => Kind::Float,
                "bool" => Kind::Bool,
                "dtype" => Kind::Dtype,
                e if fam.enums.iter().any(|d| d.name == e) => Kind::Enum(e.to_string()),
                e => return Err(format!("{file}:{line}: `{}`: unknown kind `{e}` of `{n}`", op.name)),
            };
            op.args.push((n, kind));
        }
        fam.ops.push(op);
    }
    Ok(fam)
}

/// Every family of `dir` (src/ops), in file-name order; op and enum names unique across them.
pub fn read_all(dir: &Path) -> Result<Vec<Family>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("ops"))
        .collect();
    files.sort();
    let mut fams = vec![];
    for f in files {
        let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        fams.push(parse(&name, &text, &f.display().to_string())?);
    }
    let mut seen = std::collections::HashSet::new();
    for fam in &fams {
        for n in fam.ops.iter().map(|o| &o.name).chain(fam.enums.iter().map(|e| &e.name)) {
            if !seen.insert(n.clone()) {
                return Err(format!("src/ops/{}.ops: `{n}` is declared twice", fam.name));
            }
        }
    }
    Ok(fams)
}

fn camel(s: &str) -> String {
    s.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

fn c_type(k: &Kind) -> String {
    match k {
        Kind::Array => "const emily_array*".into(),
        Kind::Arrays => "emily_arrays".into(),
        Kind::Ints => "emily_ints".into(),
        Kind::Int => "int64_t".into(),
        Kind::Float => "double".into(),
        Kind::Bool => "bool".into(),
        Kind::Dtype => "int32_t".into(),
        Kind::Enum(e) => format!("emily_{e}"),
    }
}

fn c_comment(out: &mut String, lines: &[String]) {
    for l in lines {
        let _ = writeln!(out, "// {l}");
    }
}

/// The C header (`emily_ops.h`): each op's prototype and the enums. The shim includes it,
/// so a definition whose parameters differ from its declaration fails to compile.
pub fn c_header(fams: &[Family]) -> String {
    let mut o = String::from(
        "// Generated by build.rs from src/ops/*.ops; do not edit.\n\
         // Each op: int emily_<name>(emily_stream s, args..., emily_array** out), or emily_outs\n\
         // for an op returning several arrays. 0 = success (see emily.h).\n\
         #pragma once\n#include <stdbool.h>\n#include \"emily.h\"\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n",
    );
    for f in fams {
        let _ = writeln!(o, "\n// ---- {} (src/ops/{}.ops, src/cpp/{}.cc)", f.name, f.name, f.name);
        for e in &f.enums {
            c_comment(&mut o, &e.doc);
            let vals: Vec<String> = e
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("EMILY_{}_{} = {i}", e.name.to_uppercase(), v.to_uppercase()))
                .collect();
            let _ = writeln!(o, "enum emily_{} : int32_t {{ {} }};", e.name, vals.join(", "));
        }
        for op in &f.ops {
            let mut params = vec!["emily_stream s".to_string()];
            params.extend(op.args.iter().map(|(n, k)| format!("{} {n}", c_type(k))));
            params.push(if op.many { "emily_outs outs".into() } else { "emily_array** out".into() });
            let _ = writeln!(o, "int emily_{}({});", op.name, params.join(", "));
        }
    }
    o.push_str("\n#ifdef __cplusplus\n}\n#endif\n");
    o
}

fn doc_attrs(out: &mut String, indent: &str, lines: &[String], inner: bool) {
    for l in lines {
        let _ = writeln!(out, "{indent}#{}[doc = {:?}]", if inner { "!" } else { "" }, format!(" {l}"));
    }
}

fn kind_name(k: &Kind) -> String {
    match k {
        Kind::Array => "array".into(),
        Kind::Arrays => "arrays".into(),
        Kind::Ints => "ints".into(),
        Kind::Int => "int".into(),
        Kind::Float => "float".into(),
        Kind::Bool => "bool".into(),
        Kind::Dtype => "dtype".into(),
        Kind::Enum(e) => e.clone(),
    }
}

/// How an argument of kind `k` named `n` crosses from a Rust wrapper to the C function: its
/// type in the `extern` declaration, in the wrapper, the expression passed, and any line
/// the wrapper needs first.
struct RustArg {
    ffi: String,
    api: String,
    conv: String,
    prep: String,
}

fn rust_arg(n: &str, k: &Kind) -> RustArg {
    let arg =
        |ffi: &str, api: &str, conv: String| RustArg { ffi: ffi.into(), api: api.into(), conv, prep: String::new() };
    match k {
        Kind::Array => arg("*const ffi::emily_array", "&Array", format!("{n}.as_ptr()")),
        Kind::Arrays => RustArg {
            prep: format!(
                "        let {n}: Vec<*const ffi::emily_array> = {n}.iter().map(|a| a.as_ptr()).collect();\n"
            ),
            ..arg(
                "ffi::emily_arrays",
                "&[&Array]",
                format!("ffi::emily_arrays {{ ptr: {n}.as_ptr(), len: {n}.len() }}"),
            )
        },
        Kind::Ints => arg("ffi::emily_ints", "&[i64]", format!("ffi::emily_ints::of({n})")),
        Kind::Int => arg("i64", "i64", n.to_string()),
        Kind::Float => arg("f64", "f64", n.to_string()),
        Kind::Bool => arg("bool", "bool", n.to_string()),
        Kind::Dtype => arg("i32", "Dtype", format!("{n}.code()")),
        Kind::Enum(e) => arg(&camel(e), &camel(e), n.to_string()),
    }
}

/// The core crate's `ops` modules: one per family, with its enums, the C declarations and
/// one safe wrapper per op (`name(args..., stream) -> Result<Array | Vec<Array>>`).
pub fn rust_ops(fams: &[Family]) -> String {
    let mut o = String::from("// Generated by build.rs from src/ops/*.ops; do not edit.\n");
    for f in fams {
        let _ = writeln!(o, "\npub mod {} {{", f.name);
        doc_attrs(&mut o, "    ", &f.doc, true);
        let _ = writeln!(
            o,
            "    #![doc = \"\"]\n    #![doc = \" Declared in src/ops/{0}.ops; C++ in src/cpp/{0}.cc.\"]",
            f.name
        );
        o.push_str("    #[allow(unused_imports)]\n    use crate::{ffi, Array, Dtype, Result, Stream};\n");
        for e in &f.enums {
            doc_attrs(&mut o, "    ", &e.doc, false);
            let ty = camel(&e.name);
            o.push_str("    #[repr(i32)]\n    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]\n");
            let _ = writeln!(o, "    pub enum {ty} {{");
            for (i, v) in e.values.iter().enumerate() {
                let _ = writeln!(o, "        #[doc = \" `{v}`\"]\n        {} = {i},", camel(v));
            }
            o.push_str("    }\n");
            let _ = writeln!(o, "    impl crate::ops::OpEnum for {ty} {{");
            let _ = writeln!(o, "        const NAME: &'static str = {:?};", e.name);
            let vals: Vec<String> = e.values.iter().map(|v| format!("{v:?}")).collect();
            let _ = writeln!(o, "        const VALUES: &'static [&'static str] = &[{}];", vals.join(", "));
            o.push_str("        fn from_index(i: usize) -> Option<Self> {\n            match i {\n");
            for (i, v) in e.values.iter().enumerate() {
                let _ = writeln!(o, "                {i} => Some(Self::{}),", camel(v));
            }
            o.push_str("                _ => None,\n            }\n        }\n");
            o.push_str(
                "        fn name(self) -> &'static str {\n            Self::VALUES[self as usize]\n        }\n    }\n",
            );
        }
        o.push_str("    mod raw {\n        #[allow(unused_imports)]\n        use super::*;\n        extern \"C\" {\n");
        for op in &f.ops {
            let mut params = vec!["s: ffi::emily_stream".to_string()];
            for (n, k) in &op.args {
                params.push(format!("{n}: {}", rust_arg(n, k).ffi));
            }
            params.push(if op.many {
                "outs: ffi::emily_outs".into()
            } else {
                "out: *mut *mut ffi::emily_array".into()
            });
            let _ = writeln!(
                o,
                "            #[link_name = \"emily_{0}\"]\n            pub fn {0}({1}) -> std::ffi::c_int;",
                op.name,
                params.join(", ")
            );
        }
        o.push_str("        }\n    }\n");
        for op in &f.ops {
            doc_attrs(&mut o, "    ", &op.doc, false);
            let mut params = vec![];
            let mut prep = String::new();
            let mut conv = vec![];
            for (n, k) in &op.args {
                let arg = rust_arg(n, k);
                prep.push_str(&arg.prep);
                params.push(format!("{n}: {}", arg.api));
                conv.push(arg.conv);
            }
            params.push("s: Stream".into());
            let conv = conv.join(", ");
            let sep = if conv.is_empty() { "" } else { ", " };
            o.push_str("    #[allow(clippy::too_many_arguments)]\n");
            let (ret, call) = if op.many {
                (
                    "Vec<Array>",
                    format!("crate::ops::collect_many(|outs| unsafe {{ raw::{}(s{sep}{conv}, outs) }})", op.name),
                )
            } else {
                ("Array", format!("Array::from_call(|out| unsafe {{ raw::{}(s{sep}{conv}, out) }})", op.name))
            };
            let _ = writeln!(
                o,
                "    pub fn {}({}) -> Result<{ret}> {{\n{prep}        {call}.map_err(crate::Error::at_build)\n    }}",
                op.name,
                params.join(", ")
            );
        }
        o.push_str("    /// This family's ops, in declaration order.\n    pub const SIGNATURES: &[crate::ops::Signature] = &[\n");
        for op in &f.ops {
            let args: Vec<String> = op.args.iter().map(|(n, k)| format!("({n:?}, {:?})", kind_name(k))).collect();
            let values = |k: &Kind| match k {
                Kind::Enum(e) => f.enums.iter().find(|d| &d.name == e).map(|d| d.values.clone()).unwrap_or_default(),
                _ => vec![],
            };
            let enums: Vec<String> = op
                .args
                .iter()
                .map(|(_, k)| {
                    format!("&[{}]", values(k).iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", "))
                })
                .collect();
            let _ = writeln!(
                o,
                "        crate::ops::Signature {{ family: {:?}, name: {:?}, args: &[{}], values: &[{}], many: {}, cpu: {} }},",
                f.name,
                op.name,
                args.join(", "),
                enums.join(", "),
                op.many,
                op.cpu
            );
        }
        o.push_str("    ];\n}\n");
    }
    o.push_str("\n/// Every family's signatures, in family-name order.\npub const FAMILIES: &[&[Signature]] = &[\n");
    for f in fams {
        let _ = writeln!(o, "    {}::SIGNATURES,", f.name);
    }
    o.push_str("];\n");
    o
}

/// The native crate's NIFs: one per op, named as the op, with the op's arguments and the
/// worker last (`crate::nif_ops` holds the helpers they call).
pub fn rust_nifs(fams: &[Family]) -> String {
    let mut o = String::from("// Generated by the core crate's build.rs from src/ops/*.ops; do not edit.\n");
    for f in fams {
        let _ = writeln!(o, "\n// ---- {} (src/ops/{}.ops)", f.name, f.name);
        for op in &f.ops {
            let mut params = vec!["env: rustler::Env<'a>".to_string()];
            let mut decode = String::new();
            let mut call = vec![];
            let mut f64_in = vec![];
            let mut empty_in = vec![];
            let mut describe = vec![];
            for (n, k) in &op.args {
                let (t, c) = match k {
                    Kind::Array => {
                        f64_in.push(format!("is_f64({n}.array())"));
                        empty_in.push(format!("{n}.array().size() == 0"));
                        describe.push(format!("{n}.describe()"));
                        ("Tensor".to_string(), format!("{n}.array()"))
                    }
                    Kind::Arrays => {
                        f64_in.push(format!("{n}.iter().any(|t| is_f64(t.array()))"));
                        empty_in.push(format!("{n}.iter().any(|t| t.array().size() == 0)"));
                        describe.push(format!("described(&{n})"));
                        ("Vec<Tensor>".into(), format!("&array_refs(&{n})"))
                    }
                    Kind::Ints => {
                        describe.push(format!("format!(\"{n}={{:?}}\", {n})"));
                        ("Vec<i64>".into(), format!("&{n}"))
                    }
                    Kind::Int | Kind::Float | Kind::Bool => {
                        describe.push(format!("format!(\"{n}={{}}\", {n})"));
                        let t = match k {
                            Kind::Int => "i64",
                            Kind::Float => "f64",
                            _ => "bool",
                        };
                        (t.into(), n.clone())
                    }
                    Kind::Dtype => {
                        f64_in.push(format!("{n} == emily::Dtype::F64"));
                        describe.push(format!("format!(\"{n}={{}}\", {n})"));
                        decode.push_str(&format!("    let {n} = dtype_arg({n}, {:?}, {n:?})?;\n", op.name));
                        ("rustler::Term<'a>".into(), n.clone())
                    }
                    Kind::Enum(e) => {
                        describe.push(format!("format!(\"{n}=:{{}}\", emily::ops::OpEnum::name({n}))"));
                        decode.push_str(&format!(
                            "    let {n}: emily::ops::{}::{} = enum_arg({n}, {:?}, {n:?})?;\n",
                            f.name,
                            camel(e),
                            op.name
                        ));
                        ("rustler::Term<'a>".into(), n.clone())
                    }
                };
                params.push(format!("{n}: {t}"));
                call.push(c);
            }
            params.push("s: WorkerArc".into());
            let f64_in = if f64_in.is_empty() { "false".to_string() } else { f64_in.join(" || ") };
            let empty_in = if empty_in.is_empty() { "false".to_string() } else { empty_in.join(" || ") };
            let stream = if op.cpu { "cpu_stream" } else { "stream" };
            let (ret, helper) = if op.many { ("Vec<Tensor>", "build_many") } else { ("Tensor", "build_one") };
            let call = call.join(", ");
            let sep = if call.is_empty() { "" } else { ", " };
            let _ = writeln!(
                o,
                "#[rustler::nif]\n#[allow(clippy::too_many_arguments)]\npub fn {name}<'a>({params}) -> rustler::NifResult<{ret}> {{\n{decode}    \
                 let f64_in = {f64_in};\n    \
                 let empty_in = {empty_in};\n    \
                 {helper}(env, &s, {name:?}, s.worker.{stream}(), Inputs {{ f64: f64_in, empty: empty_in }}, |stream| emily::ops::{fam}::{name}({call}{sep}stream), || vec![{describe}])\n}}",
                name = op.name,
                params = params.join(", "),
                fam = f.name,
                describe = describe.join(", "),
            );
        }
    }
    o
}
