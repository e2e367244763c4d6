// The async-PF state machine and guest ABI live in AsyncPFCore, a module with no
// dependencies, so a dlopen'd plugin (Plugins/AsyncPF) links the very same code as the
// in-process controller. Re-exported so `import VMMKit` keeps seeing them.
@_exported import AsyncPFCore
