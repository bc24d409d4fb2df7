import { type Browser, chromium } from 'playwright-core';

/**
 * Debian's Chromium, headless. Without a GPU, a sandbox (tests may run as root) or the
 * background fetches and updates that would reach out of a machine with no network.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
