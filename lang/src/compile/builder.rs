//! The function being compiled: its code, registers, scopes, captures and
//! loops, and the `Compiler` methods that emit into it.
//!
//! Registers are allocated like a stack: locals in declaration order, then
//! temporaries above them. A statement frees every temporary it used, so the
//! register count stays the deepest point of any statement.

use std::collections::{HashMap, HashSet};

use spool_vm::{FuncIdx, GlobalIdx, LocalInfo, Op, Pc, Reg};

use super::Compiler;
use crate::ast::{Ident, Span};
use crate::diag::{codes, Diagnostic};
use crate::types::{ParamId, Type};

/// A local variable.
#[derive(Clone, Debug)]
pub(super) struct Local {
    pub name: String,
    pub reg: Reg,
    pub ty: Type,
    /// The register holds a cell (the variable is captured and assigned).
    pub cell: bool,
}

/// Where a closure's capture comes from in the enclosing function.
#[derive(Clone, Copy, Debug)]
pub(super) enum CaptureFrom {
    Local(Reg),
    Capture(u16),
}

/// One captured variable of the function being compiled.
#[derive(Clone, Debug)]
pub(super) struct Capture {
    pub name: String,
    pub from: CaptureFrom,
    pub cell: bool,
    pub ty: Type,
}

/// Jumps to patch when a loop ends or continues.
#[derive(Clone, Debug, Default)]
pub(super) struct LoopCtx {
    pub breaks: Vec<usize>,
    pub continues: Vec<usize>,
    /// Try blocks open when the loop began; `break` closes the rest.
    pub try_depth: u16,
}

/// How a name resolves to a variable.
#[derive(Clone, Debug)]
pub(super) enum VarRef {
    Local { reg: Reg, cell: bool, ty: Type },
    Capture { index: u16, cell: bool, ty: Type },
    Global { index: GlobalIdx, ty: Type },
}

impl VarRef {
    pub fn ty(&self) -> &Type {
        match self {
            VarRef::Local { ty, .. } | VarRef::Capture { ty, .. } | VarRef::Global { ty, .. } => ty,
        }
    }
}

/// The state of one function under compilation.
#[derive(Clone)]
pub(super) struct FnBuilder {
    pub func: FuncIdx,
    pub code: Vec<Op>,
    pub locs: Vec<spool_vm::Loc>,
    pub scopes: Vec<Vec<Local>>,
    /// The register mark at each open scope's start, to free on close.
    pub scope_marks: Vec<u16>,
    pub next_reg: u16,
    pub max_reg: u16,
    pub captures: Vec<Capture>,
    pub loops: Vec<LoopCtx>,
    pub try_depth: u16,
    /// The declared (or, for lambdas, inferred) result type. For the
    /// script's top level, `T` of its result `T?` (see `script_return`).
    pub ret: Type,
    /// A closure: names not found locally are looked up in the enclosing function.
    pub is_closure: bool,
    /// The script's top level: `let`s directly in it may be globals.
    pub is_main: bool,
    /// Variables that must live in cells.
    pub cells: HashSet<String>,
    /// Generic parameters in scope, by name.
    pub generics: HashMap<String, ParamId>,
    pub local_info: Vec<LocalInfo>,
    /// Variables declared without a type, checked for unresolved inference
    /// variables once the outermost function is done.
    pub uninferred: Vec<(Ident, Type)>,
    /// What this function's `yield`s yield and receive.
    pub effects: (Type, Type),
    /// Where the first `yield` of this function is, for diagnostics.
    pub first_yield: Option<Span>,
    /// Where the top-level `return` that decided the script's result type
    /// is, for diagnostics.
    pub first_return: Option<Span>,
    /// The function needed more registers than an operand can name.
    pub too_many_registers: bool,
    /// Literals the loops being compiled loaded before they began, and
    /// their registers (`hoist.rs`).
    pub hoisted: Vec<(super::hoist::Literal, Reg)>,
}

impl FnBuilder {
    pub fn new(func: FuncIdx, ret: Type, is_closure: bool) -> FnBuilder {
        FnBuilder {
            func,
            code: Vec::new(),
            locs: Vec::new(),
            scopes: vec![Vec::new()],
            scope_marks: vec![0],
            next_reg: 0,
            max_reg: 0,
            captures: Vec::new(),
            loops: Vec::new(),
            try_depth: 0,
            ret,
            is_closure,
            is_main: false,
            cells: HashSet::new(),
            generics: HashMap::new(),
            local_info: Vec::new(),
            uninferred: Vec::new(),
            effects: (Type::Nil, Type::Nil),
            first_yield: None,
            first_return: None,
            too_many_registers: false,
            hoisted: Vec::new(),
        }
    }

    fn find_local(&self, name: &str) -> Option<&Local> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|scope| scope.iter().rev())
            .find(|local| local.name == name)
    }
}

/// Register `offset` after `start`. Past the register limit it saturates;
/// the function is then refused anyway (`too_many_registers`).
pub(super) fn nth(start: Reg, offset: usize) -> Reg {
    Reg(start
        .0
        .saturating_add(u16::try_from(offset).unwrap_or(u16::MAX)))
}

/// A register limit that keeps every operand within `u16`.
pub(super) const MAX_REGISTERS: u16 = 60_000;

impl Compiler {
    /// The innermost function under compilation.
    pub(super) fn b(&mut self) -> &mut FnBuilder {
        self.builders
            .last_mut()
            .expect("a function is being compiled")
    }

    /// Appends an instruction, returning its index.
    pub(super) fn emit(&mut self, op: Op, span: Span) -> usize {
        let loc = self.loc(span.start);
        let builder = self.b();
        builder.code.push(op);
        builder.locs.push(loc);
        builder.code.len() - 1
    }

    /// The index the next instruction will get.
    pub(super) fn here(&mut self) -> Pc {
        Pc(self.b().code.len() as u32)
    }

    /// Points the jump at `at` to `target`.
    pub(super) fn patch(&mut self, at: usize, target: Pc) {
        match &mut self.b().code[at] {
            Op::Jump { target: t }
            | Op::JumpIfTrue { target: t, .. }
            | Op::JumpIfFalse { target: t, .. }
            | Op::JumpIfNil { target: t, .. }
            | Op::JumpIfNotNil { target: t, .. }
            | Op::JumpIfNotLtInt { target: t, .. }
            | Op::JumpIfNotLeInt { target: t, .. }
            | Op::JumpIfNotLtIntImm { target: t, .. }
            | Op::JumpIfNotGtIntImm { target: t, .. }
            | Op::JumpIfNotVariant { target: t, .. }
            | Op::TryBegin { handler: t, .. }
            | Op::ForRangePrep { exit: t, .. }
            | Op::ForRangeLoop { body: t, .. }
            | Op::ForRangeLoopInt { body: t, .. }
            | Op::ForListNext { body: t, .. }
            | Op::JumpIfLtInt { target: t, .. }
            | Op::JumpIfLeInt { target: t, .. }
            | Op::JumpIfLtIntImm { target: t, .. }
            | Op::JumpIfGtIntImm { target: t, .. }
            | Op::JumpIfListTrue { target: t, .. }
            | Op::JumpIfListFalse { target: t, .. } => *t = target,
            _ => unreachable!("patching an instruction that does not jump"),
        }
    }

    /// Points the jump at `at` to the next instruction.
    pub(super) fn patch_here(&mut self, at: usize) {
        let target = self.here();
        self.patch(at, target);
    }

    /// Emits a jump whose target is patched later.
    pub(super) fn jump_forward(&mut self, span: Span) -> usize {
        self.emit(Op::Jump { target: Pc(0) }, span)
    }

    // ---- registers ----

    /// A fresh temporary register.
    pub(super) fn alloc(&mut self) -> Reg {
        self.alloc_n(1)
    }

    /// `count` consecutive fresh registers; returns the first.
    pub(super) fn alloc_n(&mut self, count: usize) -> Reg {
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        let builder = self.b();
        let first = builder.next_reg;
        let wanted = u32::from(builder.next_reg) + u32::from(count);
        // Past the limit registers would be shared: the function is refused
        // when it is finished (see `finish_builder`).
        builder.too_many_registers |= wanted > u32::from(MAX_REGISTERS);
        builder.next_reg = builder.next_reg.saturating_add(count).min(MAX_REGISTERS);
        builder.max_reg = builder.max_reg.max(builder.next_reg);
        Reg(first)
    }

    /// The current register mark, to free temporaries back to.
    pub(super) fn mark(&mut self) -> u16 {
        self.b().next_reg
    }

    /// Frees every register above `mark`.
    pub(super) fn free_to(&mut self, mark: u16) {
        self.b().next_reg = mark;
    }

    // ---- scopes and locals ----

    pub(super) fn push_scope(&mut self) {
        let builder = self.b();
        builder.scopes.push(Vec::new());
        builder.scope_marks.push(builder.next_reg);
    }

    /// Closes the innermost scope, freeing its locals' registers.
    pub(super) fn pop_scope(&mut self) {
        let here = self.here().0;
        let builder = self.b();
        for local in builder.scopes.pop().unwrap_or_default() {
            let info = builder
                .local_info
                .iter_mut()
                .rev()
                .find(|i| i.reg == local.reg && i.name == local.name && i.end == u32::MAX);
            if let Some(info) = info {
                info.end = here;
            }
        }
        if let Some(mark) = builder.scope_marks.pop() {
            builder.next_reg = mark;
        }
    }

    /// Binds `name` to the value already in `reg` (boxing it in a cell when
    /// the variable is captured and assigned). `reg` must be the newest
    /// register, so the local owns it.
    pub(super) fn bind_local(&mut self, name: &Ident, reg: Reg, ty: Type) {
        let cell = self.b().cells.contains(&name.name);
        if cell {
            self.emit(Op::NewCell { dst: reg, src: reg }, name.span);
        }
        self.add_local(name, reg, ty, cell);
    }

    /// Records that `name` lives in `reg` (in a cell, with `cell`) from
    /// here to the end of the innermost scope, without emitting anything:
    /// also how a loop binds its variable to a register of its own.
    pub(super) fn add_local(&mut self, name: &Ident, reg: Reg, ty: Type, cell: bool) {
        let start = self.here().0;
        let builder = self.b();
        builder.local_info.push(LocalInfo {
            name: name.name.clone(),
            reg,
            start,
            end: u32::MAX,
        });
        let scope = builder.scopes.last_mut().expect("a scope is open");
        scope.push(Local {
            name: name.name.clone(),
            reg,
            ty,
            cell,
        });
    }

    /// Declares a parameter: the next register, already holding its value.
    pub(super) fn declare_param(&mut self, name: &Ident, ty: Type) {
        let taken = self
            .b()
            .scopes
            .last()
            .is_some_and(|scope| scope.iter().any(|l| l.name == name.name));
        if taken {
            self.error(Diagnostic::new(
                codes::DUPLICATE,
                format!("duplicate definition of `{}`", name.name),
                name.span,
                "a parameter of this name comes earlier",
            ));
        }
        let reg = self.alloc();
        self.bind_local(name, reg, ty);
    }

    /// Resolves a variable name from the innermost function outwards,
    /// adding captures to closures on the way.
    pub(super) fn lookup_var(&mut self, name: &str) -> Option<VarRef> {
        let depth = self.builders.len() - 1;
        self.lookup_at(depth, name).or_else(|| {
            let index = *self.global_names.get(name)?;
            Some(VarRef::Global {
                index,
                ty: self.globals[index.index()].ty.clone(),
            })
        })
    }

    fn lookup_at(&mut self, depth: usize, name: &str) -> Option<VarRef> {
        let builder = &self.builders[depth];
        if let Some(local) = builder.find_local(name) {
            return Some(VarRef::Local {
                reg: local.reg,
                cell: local.cell,
                ty: local.ty.clone(),
            });
        }
        if let Some(index) = builder.captures.iter().position(|c| c.name == name) {
            let capture = &builder.captures[index];
            return Some(VarRef::Capture {
                index: index as u16,
                cell: capture.cell,
                ty: capture.ty.clone(),
            });
        }
        if depth == 0 || !builder.is_closure {
            return None;
        }
        let (from, cell, ty) = match self.lookup_at(depth - 1, name)? {
            VarRef::Local { reg, cell, ty } => (CaptureFrom::Local(reg), cell, ty),
            VarRef::Capture { index, cell, ty } => (CaptureFrom::Capture(index), cell, ty),
            global @ VarRef::Global { .. } => return Some(global),
        };
        let captures = &mut self.builders[depth].captures;
        captures.push(Capture {
            name: name.to_string(),
            from,
            cell,
            ty: ty.clone(),
        });
        Some(VarRef::Capture {
            index: captures.len() as u16 - 1,
            cell,
            ty,
        })
    }

    /// Loads a variable's value into `dst`.
    pub(super) fn load_var(&mut self, var: &VarRef, dst: Reg, span: Span) {
        let op = match *var {
            VarRef::Local {
                reg, cell: false, ..
            } => {
                if reg == dst {
                    return;
                }
                Op::Move { dst, src: reg }
            }
            VarRef::Local {
                reg, cell: true, ..
            } => Op::CellGet { dst, cell: reg },
            VarRef::Capture {
                index, cell: false, ..
            } => Op::LoadCapture { dst, index },
            VarRef::Capture {
                index, cell: true, ..
            } => Op::CaptureGet { dst, index },
            VarRef::Global { index, .. } => Op::LoadGlobal { dst, global: index },
        };
        self.emit(op, span);
    }

    /// Stores `src` into a variable.
    pub(super) fn store_var(&mut self, var: &VarRef, src: Reg, span: Span) {
        let op = match *var {
            VarRef::Local {
                reg, cell: false, ..
            } => {
                if reg == src {
                    return;
                }
                Op::Move { dst: reg, src }
            }
            VarRef::Local {
                reg, cell: true, ..
            } => Op::CellSet { cell: reg, src },
            VarRef::Capture { index, .. } => Op::CaptureSet { index, src },
            VarRef::Global { index, .. } => Op::StoreGlobal { global: index, src },
        };
        self.emit(op, span);
    }

    /// Reports `break`/`continue`/`return` used where they mean nothing.
    pub(super) fn misplaced(&mut self, span: Span, what: &str, place: &str) {
        self.error(Diagnostic::new(
            codes::MISPLACED,
            format!("`{what}` outside of a {place}"),
            span,
            format!("`{what}` is only allowed inside a {place}"),
        ));
    }
}

/// Does an instruction of `code` jump to instruction `pc`?
pub(super) fn jumps_to(code: &[Op], pc: usize) -> bool {
    code.iter()
        .any(|op| op.jump_target().is_some_and(|target| target.index() == pc))
}
