// ESLint flat config: type-aware typescript-eslint, the module boundaries of DESIGN.md
// (db ← queue ← {reaper, graphql} ← server ← cli; db ← auth ← {graphql, server, cli}), and
// Prettier owning the formatting.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import prettier from 'eslint-config-prettier';

/** Imports each module may not make: `target` may not import from `from`. */
const boundaries = [
  {
    target: './src/db',
    from: [
      './src/auth',
      './src/queue',
      './src/reaper',
      './src/graphql',
      './src/server',
      './src/client',
      './src/cli.ts',
    ],
  },
  {
    target: './src/queue',
    from: [
      './src/auth',
      './src/reaper',
      './src/graphql',
      './src/server',
      './src/client',
      './src/cli.ts',
    ],
  },
  {
    target: './src/reaper',
    from: ['./src/auth', './src/graphql', './src/server', './src/client', './src/cli.ts'],
  },
  {
    target: './src/graphql',
    from: ['./src/db', './src/reaper', './src/server', './src/client', './src/cli.ts'],
  },
  { target: './src/server', from: ['./src/cli.ts'] },
  // Tokens and scopes sit on the database only; the GraphQL layer enforces them.
  {
    target: './src/auth',
    from: [
      './src/queue',
      './src/reaper',
      './src/graphql',
      './src/server',
      './src/client',
      './src/cli.ts',
    ],
  },
  // The client embeds the engine (in-process mode) but never the service around it.
  { target: './src/client', from: ['./src/graphql', './src/server', './src/cli.ts'] },
];

export default tseslint.config(
  { ignores: ['node_modules/', '.holdline-data/', 'coverage/', 'dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'import-x/no-restricted-paths': ['error', { zones: boundaries }],
      // Inner files of the engine are private: other modules go through src/queue/index.ts.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(\\.\\./)+queue/(?!index\\.ts$)',
              message: 'Import the engine through src/queue/index.ts.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/queue/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['test/**', 'bench/**'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  { files: ['*.js', 'bin/*.js'], ...tseslint.configs.disableTypeChecked },
  prettier,
);
