//! What a host adds to an [`Engine`]: Rust functions, Rust types and I/O
//! operations. Every registration is checked when it is made — a signature
//! naming an unknown type, a type clashing with another, a name taken —
//! and a refused one leaves the engine as it was, so it never breaks the
//! compiles that follow.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use spool_lang::{ast, NativeSpec};

use crate::host_fn::{HostFunction, Signature};
use crate::{Engine, Error, Run};

impl Engine {
    /// Exposes a Rust closure to scripts as the function `name`. Its Spool
    /// signature comes from the Rust types: `i64` (and the other integers)
    /// is `int`, `f64` `float`, `bool`, `String` `str`, `Vec<T>` `[T]`,
    /// `Option<T>` `T?`, `HashMap`/`BTreeMap` with `String` or `i64` keys
    /// `[str: T]`/`[int: T]`, `()` `nil`, and a struct or enum deriving
    /// serde's `Serialize` and `Deserialize` the type of its name (declared
    /// to scripts on the way, as [`Engine::register_type`] does). A closure
    /// returning `Result<T, E>` returns `T` to the script and raises its
    /// `Err` as an error the script can catch ([`HostError`](crate::HostError)
    /// chooses the kind). Calls are type-checked at compile time, run
    /// without suspending the task and charge the instruction budget for
    /// the data they convert. Arguments are owned values: a closure takes
    /// `String`, not `&str` (Rust cannot infer which of the closure's
    /// argument lists a borrowed `&str` parameter belongs to).
    ///
    /// ```
    /// let mut engine = spool::Engine::new();
    /// engine.register_fn("add", |a: i64, b: i64| a + b).unwrap();
    /// engine.register_fn("shout", |s: String| s.to_uppercase() + "!").unwrap();
    /// let program = engine.compile("main.spl", "print(shout(\"sum ${add(2, 3)}\"))").unwrap();
    /// let mut output = spool::CaptureOutput::default();
    /// let mut run = program.start(vec![]);
    /// assert!(matches!(run.resume(&mut output), Ok(spool::Step::Done(_))));
    /// assert_eq!(output.lines, ["SUM 5!"]);
    /// // Calls are checked at compile time.
    /// assert!(engine.compile("bad.spl", "add(1, \"2\")").is_err());
    /// ```
    pub fn register_fn<Args, F: HostFunction<Args>>(
        &mut self,
        name: &str,
        function: F,
    ) -> Result<(), Error> {
        let signature = F::signature().map_err(|why| refused(name, &why))?;
        let text = signature_text(name, &signature);
        let decl = parse_signature(&text)?;
        let key = format!("host.{name}");
        let native = function.into_native(Arc::from(name), signature.fallible);
        self.try_change(|engine| {
            engine.declare_types(&signature.declarations)?;
            engine.add_spec(NativeSpec {
                key: key.clone(),
                decl,
                io: false,
            });
            engine.natives.insert_host(key.clone(), native);
            Ok(())
        })
    }

    /// Declares the Rust type `T` (a struct or enum deriving serde's
    /// `Serialize` and `Deserialize`) to scripts under its Rust name, with
    /// the structs and enums its fields use: scripts can build and read
    /// its values, and signatures of functions and I/O operations can
    /// name it. Values convert both ways with [`Run::get`](crate::Run::get),
    /// [`Run::complete_with`](crate::Run::complete_with) and friends.
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { id: i64, name: String, tags: Vec<String> }
    ///
    /// let mut engine = spool::Engine::new();
    /// engine.register_type::<User>().unwrap();
    /// engine.register_io("fn load_user(id: int) -> User").unwrap();
    /// let source = "let u = User(id: 1, name: \"ada\", tags: [])\nprint(u.name)";
    /// assert!(engine.compile("main.spl", source).is_ok());
    /// ```
    pub fn register_type<T: DeserializeOwned>(&mut self) -> Result<(), Error> {
        let shape = spool_vm::serde_data::describe::<T>()
            .map_err(|why| Error::Register(format!("cannot declare the type: {why}")))?;
        self.try_change(|engine| engine.declare_types(&shape.declarations))
    }

    /// Declares a host I/O operation from its Spool signature, for example
    /// `"fn load_user(id: int) -> User"`: scripts compiled afterwards can
    /// call it, and each call suspends the calling task with an
    /// [`IoRequest`](crate::IoRequest) whose `op` is the function's name.
    /// The host answers through [`Run::complete`] (or a
    /// [`Dispatcher`](crate::Dispatcher) and [`drive`](crate::drive)).
    /// Types in the signature must be built in, declared by the standard
    /// library (`Output`, `Request`, `Response`, `Json`, `Error`) or
    /// registered with [`Engine::register_type`]; an unknown one is refused
    /// here, naming it.
    ///
    /// ```
    /// let mut engine = spool::Engine::new();
    /// engine.register_io("fn fetch(url: str) -> str").unwrap();
    /// let error = engine.register_io("fn load(id: int) -> Userr").unwrap_err();
    /// assert!(error.to_string().contains("Userr"), "{error}");
    /// // The refused operation left the engine as it was.
    /// assert!(engine.compile("main.spl", "print(1)").is_ok());
    /// ```
    pub fn register_io(&mut self, signature: &str) -> Result<(), Error> {
        self.register_io_decl(parse_signature(signature)?)
    }

    /// [`Engine::register_io`] with the signature already parsed by
    /// [`spool_lang::parse_native_sig`]: a host can parse its signatures
    /// once, when it is built (a build script serializing the
    /// declarations), and skip parsing them on every start, as the
    /// command line does. Refused, leaving the engine as it was, when the
    /// signature names an unknown type or the declaration has a body.
    pub fn register_io_decl(&mut self, decl: ast::FnDecl) -> Result<(), Error> {
        if decl.body.is_some() {
            return Err(Error::Register(format!(
                "`{}` is declared with a body, not as a signature",
                decl.name.name
            )));
        }
        // Only the new signature can name an unknown type: everything else
        // the engine holds was checked when it was added, and an operation
        // changes none of it. So the engine is changed in place, not
        // through a checked copy ([`Engine::try_change`]).
        check_signature(&decl, &self.declared_types()?)?;
        let key = format!("io.{}", decl.name.name);
        self.add_spec(NativeSpec {
            key,
            decl,
            io: true,
        });
        Ok(())
    }

    /// Signs every run [`Engine::snapshot`] saves with `key` (HMAC-SHA256
    /// over the whole file) and makes [`Engine::restore`] refuse a file
    /// that is unsigned or changed, before decoding any of it.
    pub fn set_state_key(&mut self, key: &[u8]) {
        self.state_key = Some(Arc::from(key));
    }

    /// Saves `run` (its program included), signed when the engine has a
    /// state key.
    pub fn snapshot(&self, run: &Run) -> Vec<u8> {
        let bytes = crate::snapshot(run);
        match &self.state_key {
            Some(key) => spool_vm::snapshot::sign(&bytes, key),
            None => bytes,
        }
    }

    /// Restores a run saved by [`Engine::snapshot`] (or
    /// [`crate::snapshot`]), binding its natives — the library's and the
    /// Rust functions registered with this engine — by name. A run that
    /// calls a function this engine does not have is refused, naming it;
    /// with a state key, so is a file that is unsigned or changed.
    ///
    /// ```
    /// let mut engine = spool::Engine::new();
    /// engine.register_fn("double", |x: i64| x * 2).unwrap();
    /// let program = engine.compile("main.spl", "let x: int = yield 1\nprint(double(x))").unwrap();
    /// let mut run = program.start(vec![]);
    /// let mut output = spool::CaptureOutput::default();
    /// assert!(matches!(run.resume(&mut output), Ok(spool::Step::Yield(_))));
    /// let saved = engine.snapshot(&run);
    ///
    /// let mut run = engine.restore(&saved).unwrap();
    /// run.send(spool::Value::Int(21));
    /// assert!(matches!(run.resume(&mut output), Ok(spool::Step::Done(_))));
    /// assert_eq!(output.lines, ["42"]);
    /// // An engine without `double` cannot run it.
    /// let error = spool::Engine::new().restore(&saved).unwrap_err();
    /// assert!(error.to_string().contains("host.double"), "{error}");
    /// ```
    pub fn restore(&self, bytes: &[u8]) -> Result<Run, Error> {
        let bytes = match &self.state_key {
            Some(key) => spool_vm::snapshot::verify(bytes, key)?,
            None => bytes,
        };
        Ok(spool_vm::snapshot::restore(bytes, &self.natives)?)
    }

    /// Applies `change` to a copy of the engine and keeps it only when it
    /// succeeded and every type a signature or declaration names is known,
    /// so a refused registration never breaks later compiles.
    fn try_change(
        &mut self,
        change: impl FnOnce(&mut Engine) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut next = self.clone();
        change(&mut next)?;
        next.check_names()?;
        *self = next;
        Ok(())
    }

    /// Refuses a signature or declaration naming a type that is neither
    /// built in nor declared, and a type declared twice. The library's own
    /// signatures and declarations are known to be right (they compiled
    /// when this crate was built); the host's are checked.
    fn check_names(&self) -> Result<(), Error> {
        let declared = self.declared_types()?;
        let known = |name: &str, generics: &[ast::Ident]| {
            spool_lang::is_builtin_type(name)
                || declared.contains(&name)
                || generics.iter().any(|g| g.name == name)
        };
        let items = self.prelude.iter().flat_map(|(_, prelude)| &prelude.items);
        for item in items {
            let (name, generics, types): (&str, &[ast::Ident], Vec<&ast::TypeExpr>) = match item {
                ast::Item::Struct(decl) => (
                    &decl.name.name,
                    &decl.generics,
                    decl.fields.iter().map(|f| &f.ty).collect(),
                ),
                ast::Item::Enum(decl) => (
                    &decl.name.name,
                    &decl.generics,
                    decl.variants.iter().flat_map(|v| &v.fields).collect(),
                ),
                _ => continue,
            };
            for ty in types {
                if let Some(unknown) = unknown_name(ty, &|n| known(n, generics)) {
                    return Err(Error::Register(format!(
                        "`{name}` names the unknown type `{unknown}`"
                    )));
                }
            }
        }
        for spec in &self.host_specs {
            check_signature(&spec.decl, &declared)?;
        }
        Ok(())
    }

    /// The names of the structs and enums scripts may use besides the
    /// built-in types: the library's, or those of the prelude with the
    /// host's declarations, where a type declared twice is refused.
    fn declared_types(&self) -> Result<Vec<&str>, Error> {
        let mut declared: Vec<&str> = Vec::new();
        match &self.prelude {
            None => declared.extend(crate::LIBRARY_TYPES),
            Some((_, prelude)) => {
                for item in &prelude.items {
                    let name = match item {
                        ast::Item::Struct(decl) => &decl.name.name,
                        ast::Item::Enum(decl) => &decl.name.name,
                        _ => continue,
                    };
                    if declared.contains(&name.as_str()) || spool_lang::is_builtin_type(name) {
                        return Err(Error::Register(format!(
                            "a type named `{name}` is already declared"
                        )));
                    }
                    declared.push(name);
                }
            }
        }
        Ok(declared)
    }

    /// Adds (or replaces) the function or operation `spec` declares: it
    /// replaces any of the same key or name, the library's included.
    fn add_spec(&mut self, spec: NativeSpec) {
        let name = spec.decl.name.name.clone();
        self.host_specs
            .retain(|old| old.key != spec.key && old.decl.name.name != name);
        // The library's natives of that name (a range of the list sorted
        // by name) and the one of that key.
        let natives = crate::LIBRARY_NATIVES;
        let first = natives.partition_point(|&(native, _)| native < name.as_str());
        let named = natives[first..]
            .iter()
            .take_while(|&&(native, _)| native == name);
        let keys = crate::LIBRARY_NATIVE_KEYS;
        let keyed = keys
            .binary_search(&spec.key.as_str())
            .ok()
            .map(|at| keys[at]);
        for key in named.map(|&(_, key)| key).chain(keyed) {
            if !self.replaced.iter().any(|k| k == key) {
                self.replaced.push(key.to_string());
            }
        }
        self.host_specs.push(spec);
    }

    /// Adds the struct and enum declarations not declared yet; one declared
    /// differently under the same name is refused.
    fn declare_types(&mut self, declarations: &[(String, String)]) -> Result<(), Error> {
        let mut added = false;
        for (name, text) in declarations {
            match self.host_types.iter().find(|(n, _)| n == name) {
                Some((_, old)) if old == text => {}
                Some((_, old)) => {
                    return Err(Error::Register(format!(
                        "type `{name}` is already declared as `{old}`, not `{text}`"
                    )))
                }
                None => {
                    self.host_types.push((name.clone(), text.clone()));
                    added = true;
                }
            }
        }
        if added {
            let mut text = spool_stdlib::PRELUDE.to_string();
            for (_, declaration) in &self.host_types {
                text.push('\n');
                text.push_str(declaration);
            }
            text.push('\n');
            let parsed = spool_lang::parse(&text, 0).map_err(|diagnostics| {
                let first = diagnostics.first().map(|d| d.message.clone());
                Error::Register(format!(
                    "the declarations do not parse: {}",
                    first.unwrap_or_default()
                ))
            })?;
            self.prelude = Some((Arc::from(text), Arc::new(parsed)));
        }
        Ok(())
    }
}

/// The Spool signature text of `name` with `signature`'s types.
fn signature_text(name: &str, signature: &Signature) -> String {
    let params: Vec<String> = signature
        .params
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("a{}: {ty}", i + 1))
        .collect();
    format!("fn {name}({}) -> {}", params.join(", "), signature.result)
}

/// Parses a native signature, refusing a bad one with its first problem.
fn parse_signature(signature: &str) -> Result<spool_lang::ast::FnDecl, Error> {
    spool_lang::parse_native_sig(signature).map_err(|diagnostics| {
        let first = diagnostics.first().map(|d| d.message.clone());
        Error::Register(format!(
            "bad signature `{signature}`: {}",
            first.unwrap_or_default()
        ))
    })
}

/// Refuses a signature naming a type that is neither built in, nor in
/// `declared`, nor one of its own type parameters.
fn check_signature(decl: &ast::FnDecl, declared: &[&str]) -> Result<(), Error> {
    let known = |name: &str| {
        spool_lang::is_builtin_type(name)
            || declared.contains(&name)
            || decl.generics.iter().any(|g| g.name == name)
    };
    let types = decl
        .params
        .iter()
        .filter_map(|p| p.ty.as_ref())
        .chain(&decl.ret);
    for ty in types {
        if let Some(unknown) = unknown_name(ty, &known) {
            return Err(Error::Register(format!(
                "the signature of `{}` names the unknown type `{unknown}` \
                 (declare it with `register_type`)",
                decl.name.name
            )));
        }
    }
    Ok(())
}

/// A function refused before it was added.
fn refused(name: &str, why: &str) -> Error {
    Error::Register(format!("cannot register `{name}`: {why}"))
}

/// The first type name in `ty` that `known` does not accept.
fn unknown_name(ty: &ast::TypeExpr, known: &dyn Fn(&str) -> bool) -> Option<String> {
    match &ty.kind {
        ast::TypeExprKind::Named(name, args) => {
            if !known(&name.name) {
                return Some(name.name.clone());
            }
            args.iter().find_map(|arg| unknown_name(arg, known))
        }
        ast::TypeExprKind::Nil => None,
        ast::TypeExprKind::List(inner) | ast::TypeExprKind::Optional(inner) => {
            unknown_name(inner, known)
        }
        ast::TypeExprKind::Map(key, value) => {
            unknown_name(key, known).or_else(|| unknown_name(value, known))
        }
        ast::TypeExprKind::Fn {
            params,
            ret,
            yields,
            receives,
        } => params
            .iter()
            .chain(ret.as_deref())
            .chain(yields.as_deref())
            .chain(receives.as_deref())
            .find_map(|part| unknown_name(part, known)),
    }
}
