#!/usr/bin/env node
// Launcher for the `jml` command when installed or linked: registers the TypeScript loader
// (resolved next to this file, not the caller's directory), then runs the CLI.
import { register } from 'tsx/esm/api';

register();
await import('./jml.ts');
