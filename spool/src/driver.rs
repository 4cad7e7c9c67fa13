//! The driver loop: running a run to its end against a [`Dispatcher`], the
//! one place that turns steps into I/O phases, answers to yields and
//! checkpoints. [`drive`] is the simple form; [`drive_with`] lets a host
//! take part at each point through [`Hooks`] (the `spool` command line
//! saves checkpoints, records a trace and stops on Ctrl-C there).
//!
//! # When to save a run
//!
//! A host that keeps runs durable saves them ([`crate::snapshot`]) in
//! [`Hooks::before_io`]: when [`Run::resume`] has returned [`Step::Io`],
//! *before* the batch goes to the dispatcher (write-ahead), as `spool run
//! --state` does. The saved run then records those requests as in flight;
//! after a crash, the host restores it and the driver issues
//! [`Run::pending_io`] again with the same ids (at-least-once: a request
//! may have been carried out already, and results that arrived after the
//! save are asked for again), and no script code runs twice. A host with
//! timers records each one's deadline with [`Run::set_io_deadline`] before
//! saving, and shortens a re-issued timer to what is left of it in
//! [`Hooks::reissue`]. Save at each yield too ([`Hooks::answer`]), before
//! answering it. Saving anywhere else is allowed (after any step) but a
//! save taken after results were delivered repeats less and costs one more
//! write per I/O phase.

use std::time::Duration;

use spool_vm::{IoRequest, Output, Run, RunError, Step, Value};

use crate::dispatch::{Completion, Dispatcher};

/// Where a host takes part in [`drive_with`]. Every method but
/// [`Hooks::answer`] does nothing by default; an `Err` from any of them
/// stops the drive with [`Stop::Host`].
pub trait Hooks {
    /// Requests a restored run was waiting for are about to be issued
    /// again; the host may adjust them (shorten a timer to what is left).
    fn reissue(&mut self, _run: &Run, _pending: &mut [IoRequest]) {}

    /// A CPU phase ended with `batch` about to go to the dispatcher; the
    /// run already records it in flight. The moment to save the run.
    fn before_io(&mut self, _run: &mut Run, _batch: &[IoRequest]) -> Result<(), String> {
        Ok(())
    }

    /// The main program yielded `value` to the host: `Some(answer)`
    /// continues with the `yield` evaluating to `answer`; `None` ends the
    /// drive with [`Driven::AtYield`], the run still waiting there.
    fn answer(&mut self, run: &mut Run, value: Value) -> Result<Option<Value>, String>;

    /// The instruction budget ran out; the drive continues after this.
    fn paused(&mut self, _run: &mut Run) -> Result<(), String> {
        Ok(())
    }

    /// How long to wait for I/O before calling [`Hooks::waiting`]; `None`
    /// (the default) waits without a limit.
    fn wait_slice(&self) -> Option<Duration> {
        None
    }

    /// A slice of waiting for I/O passed with nothing finished.
    fn waiting(&mut self, _run: &mut Run) -> Result<(), String> {
        Ok(())
    }

    /// A request finished; its result goes to the run right after.
    fn completed(&mut self, _completion: &Completion) {}

    /// A CPU phase ended with `step`, `began` being when it started.
    fn phase_ended(
        &mut self,
        _run: &Run,
        _began: std::time::Instant,
        _step: &Result<Step, RunError>,
    ) {
    }
}

/// How a drive ended normally.
#[derive(Clone, Debug, PartialEq)]
pub enum Driven {
    /// The main program returned this value.
    Done(Value),
    /// [`Hooks::answer`] stopped at a top-level yield.
    AtYield,
}

/// Why a drive stopped early.
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// The run ended with an uncaught error.
    Run(RunError),
    /// A hook asked to stop, with this message.
    Host(String),
}

/// The message an outstanding request fails with when the dispatcher has
/// nothing left in flight (it dropped the request).
pub const DROPPED: &str = "the dispatcher finished without answering this request";

/// Runs `run` to its end: answers its I/O with `dispatcher` (a batch per
/// I/O phase, results fed back as they finish) and its top-level `yield`s
/// with `answer` (given the yielded value; its result is sent back).
/// Returns the main program's result or the run's error. Requests the run
/// was already waiting for (a restored run's [`Run::pending_io`]) are
/// handed to the dispatcher first, with their ids. See the module's
/// documentation for when to save a run.
pub fn drive(
    run: &mut Run,
    output: &mut dyn Output,
    dispatcher: &mut dyn Dispatcher,
    answer: impl FnMut(&mut Run, Value) -> Value,
) -> Result<Value, RunError> {
    struct Answer<F>(F);
    impl<F: FnMut(&mut Run, Value) -> Value> Hooks for Answer<F> {
        fn answer(&mut self, run: &mut Run, value: Value) -> Result<Option<Value>, String> {
            Ok(Some((self.0)(run, value)))
        }
    }
    match drive_with(run, output, dispatcher, &mut Answer(answer)) {
        Ok(Driven::Done(value)) => Ok(value),
        Ok(Driven::AtYield) => unreachable!("`drive` answers every yield"),
        Err(Stop::Run(error)) => Err(error),
        Err(Stop::Host(message)) => unreachable!("`drive`'s hooks never stop: {message}"),
    }
}

/// Runs `run` until it finishes, fails, or a hook stops it, with `hooks`
/// taking part at each point (see [`Hooks`]).
pub fn drive_with(
    run: &mut Run,
    output: &mut dyn Output,
    dispatcher: &mut dyn Dispatcher,
    hooks: &mut dyn Hooks,
) -> Result<Driven, Stop> {
    let mut pending = run.pending_io();
    if !pending.is_empty() {
        hooks.reissue(run, &mut pending);
        dispatcher.submit(pending);
    }
    loop {
        let began = std::time::Instant::now();
        let step = run.resume(output);
        hooks.phase_ended(run, began, &step);
        match step.map_err(Stop::Run)? {
            Step::Done(value) => return Ok(Driven::Done(value)),
            Step::Paused => hooks.paused(run).map_err(Stop::Host)?,
            Step::Yield(value) => match hooks.answer(run, value).map_err(Stop::Host)? {
                Some(answer) => run.send(answer),
                None => return Ok(Driven::AtYield),
            },
            Step::Io(batch) => {
                hooks.before_io(run, &batch).map_err(Stop::Host)?;
                if !batch.is_empty() {
                    dispatcher.submit(batch);
                }
                io_phase(run, dispatcher, hooks)?;
            }
        }
    }
}

/// Waits for the first results of an I/O phase and delivers them.
fn io_phase(
    run: &mut Run,
    dispatcher: &mut dyn Dispatcher,
    hooks: &mut dyn Hooks,
) -> Result<(), Stop> {
    let finished = match hooks.wait_slice() {
        None => dispatcher.wait(),
        Some(slice) => loop {
            match dispatcher.wait_timeout(slice) {
                Some(finished) => break finished,
                None => hooks.waiting(run).map_err(Stop::Host)?,
            }
        },
    };
    if finished.is_empty() {
        // Nothing will answer what is outstanding: fail it rather than hang.
        for request in run.pending_io() {
            run.complete(request.id, Err(DROPPED.to_string()));
        }
    }
    for completion in finished {
        hooks.completed(&completion);
        run.complete(completion.id, completion.result);
    }
    Ok(())
}
