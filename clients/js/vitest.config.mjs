export default { test: { include: ['test/**/*.test.ts'], environment: 'node' } };
