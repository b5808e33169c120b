// Merged into jco's Rolldown configuration (`jco componentize --bundle
// --bundle-config bundle.config.js`): the contract's interfaces are imports of
// the component, not modules to bundle.
export default { external: [/^kiln:/] };
