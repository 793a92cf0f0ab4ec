//! One yoi runtime: LocalRuntime<C: Core>.
