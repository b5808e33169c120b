// Merged into jco's Rolldown configuration: the contract's interfaces are the
// component's imports, not modules to bundle.
export default { external: [/^kiln:/] };
