#!/usr/bin/env node
// Entry point of the `mcg` command; the code lives in orchestrator/cli.ts.
import { main } from '../dist/orchestrator/cli.js';

process.exitCode = await main(process.argv);
