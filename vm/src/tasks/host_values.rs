//! Rust values in and out of a run through serde: reading a run's value as
//! a Rust type ([`Run::get`]), an I/O request's arguments
//! ([`IoRequest::args`], [`IoRequest::arg`]), and answering requests and
//! yields with Rust values ([`Run::complete_with`], [`Run::send_with`]),
//! checked all the way down against the type the script declared. A value
//! that does not fit is refused to the host with the place inside it and
//! both types ([`ValueError`]); the run is left as it was.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::heap::value::Value;
use crate::run::Run;
use crate::serde_data::{from_data, to_data};
use crate::tasks::io::{Data, IoId, IoRequest};

/// A value that did not convert between Rust and a run, or did not fit
/// the type the script declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueError {
    /// What did not fit, where and why.
    pub message: String,
}

impl ValueError {
    fn new(message: impl Into<String>) -> ValueError {
        ValueError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValueError {}

impl Run {
    /// The run's `value` (a result, a yielded value, a field of either) as
    /// a Rust value: `i64`, `f64`, `bool`, `String`, `Vec`, `Option`, maps,
    /// or any type deriving serde's `Deserialize` with the shape of the
    /// Spool value (a struct's fields by name, an enum's variants by name).
    pub fn get<T: DeserializeOwned>(&self, value: Value) -> Result<T, ValueError> {
        let data = Data::from_value(value, &self.heap, &self.program).map_err(ValueError::new)?;
        from_data(data).map_err(|why| ValueError::new(why.to_string()))
    }

    /// Completes the I/O request `id` with a Rust value, or fails it with
    /// an `Io` error carrying the message. The value is checked against
    /// the operation's declared result type first: one that does not fit
    /// is refused here (the request stays outstanding), naming the
    /// operation, the place inside the value and both types. Returns false
    /// when no request with that id is outstanding.
    pub fn complete_with<T: Serialize + ?Sized>(
        &mut self,
        id: IoId,
        result: Result<&T, String>,
    ) -> Result<bool, ValueError> {
        let result = match result {
            Err(message) => Err(message),
            Ok(value) => {
                let mut data = to_data(value).map_err(|why| ValueError::new(why.to_string()))?;
                if let Some((op, returns)) = self.io_result_type(id) {
                    crate::tasks::check::check(&mut data, &returns, &self.program).map_err(
                        |why| {
                            ValueError::new(format!(
                                "the answer to `{op}` does not fit its type `{returns}`: {why}"
                            ))
                        },
                    )?;
                }
                Ok(data)
            }
        };
        Ok(self.complete(id, result))
    }

    /// Answers the top-level `yield` the run is paused at with a Rust
    /// value, checked against the type the script's top level receives
    /// (refused, naming the place and both types, when it does not fit).
    pub fn send_with<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let mut data = to_data(value).map_err(|why| ValueError::new(why.to_string()))?;
        let receives = self.program.main_receives.clone();
        crate::tasks::check::check(&mut data, &receives, &self.program).map_err(|why| {
            ValueError::new(format!(
                "the answer does not fit the `{receives}` the `yield` receives: {why}"
            ))
        })?;
        let program = std::sync::Arc::clone(&self.program);
        let value = data
            .into_value(&mut self.heap, &program)
            .map_err(ValueError::new)?;
        self.send(value);
        Ok(())
    }

    /// The operation and declared result type of the outstanding request
    /// `id`.
    fn io_result_type(&self, id: IoId) -> Option<(String, crate::program::types::TypeDesc)> {
        let in_flight = self.sched.in_flight.get(&id)?;
        let decl = self.program.natives.get(in_flight.native.index())?;
        Some((decl.name.clone(), decl.io.clone()?))
    }
}

impl IoRequest {
    /// All the arguments as one Rust value: a tuple with one element per
    /// argument (`let (id, name): (i64, String) = request.args()?`).
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        from_data(Data::List(self.args.to_vec()))
            .map_err(|why| ValueError::new(format!("the arguments of `{}`: {why}", self.op)))
    }

    /// Argument `index` (from 0) as a Rust value.
    pub fn arg<T: DeserializeOwned>(&self, index: usize) -> Result<T, ValueError> {
        let data = self.args.get(index).cloned().ok_or_else(|| {
            ValueError::new(format!(
                "`{}` has {} arguments, not {}",
                self.op,
                self.args.len(),
                index + 1
            ))
        })?;
        from_data(data).map_err(|why| {
            ValueError::new(format!("argument {} of `{}`: {why}", index + 1, self.op))
        })
    }
}
