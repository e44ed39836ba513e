import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { HttpRoute, RouteDestination } from '../../src/k8s/resources.js'
import type { RouteSelector } from '../../src/routing/router.js'
import type { Phase, RolloutState } from '../../src/routing/state.js'
import {
  type EventType,
  type FailureDecision,
  type FailureFacts,
  type FromPhase,
  type Result,
  type RunContext,
  type TransitionContext,
  type TransitionEvent,
  TRANSITIONS,
  TransitionError,
  afterFailure,
  next,
  outputResult,
} from '../../src/rollout/machine.js'

// Every expected state below is written out in full: none is derived from a fixture by the rules under test.

const NEW_RUN = 'org/app#900.1/deploy/aaaaaa'
const OLD_RUN = 'org/app#800.1/deploy/bbbbbb'
const OLDER_RUN = 'org/app#700.1/deploy/cccccc'

const RUN_START = '2026-02-01T10:00:00.000Z'
const NOW = '2026-02-01T10:07:00.000Z'
const OLD_START = '2026-01-20T09:00:00.000Z'
const OLD_UPDATED = '2026-01-20T09:04:00.000Z'
const OLDER_START = '2026-01-19T08:00:00.000Z'
const OLDER_UPDATED = '2026-01-19T08:03:00.000Z'

const NAMED: RouteSelector = { by: 'name', name: 'reviews' }
const DEFAULT: RouteSelector = { by: 'default' }

const destination = (subset: string, weight?: number): RouteDestination => ({
  destination: { host: 'reviews', subset },
  ...(weight === undefined ? {} : { weight }),
})
const httpRoute = (...route: RouteDestination[]): HttpRoute => ({ name: 'reviews', route })

const ORIGINAL = httpRoute(destination('v1'))
const V3_AT_10 = httpRoute(destination('v1', 90), destination('v3', 10))
const V3_AT_25 = httpRoute(destination('v1', 75), destination('v3', 25))
const V3_AT_50 = httpRoute(destination('v1', 50), destination('v3', 50))
const V3_ALL = httpRoute(destination('v3'))
const V2_ALL = httpRoute(destination('v2'))
const V2_AT_10 = httpRoute(destination('v1', 90), destination('v2', 10))
const V3_AT_10_OVER_V2 = httpRoute(destination('v2', 90), destination('v3', 10))

/** Paused at 10 by an older run: what the dead run below began from. */
const EARLIER_PAUSED: RolloutState = {
  version: 1,
  phase: 'paused',
  runId: OLDER_RUN,
  stable: 'v1',
  canary: 'v3',
  route: DEFAULT,
  originalRoute: ORIGINAL,
  lastWritten: V3_AT_10,
  weight: 10,
  startedAt: OLDER_START,
  updatedAt: OLDER_UPDATED,
}

/** A run that died while shifting from 10 to 25. */
const DEAD_SHIFTING: RolloutState = {
  version: 1,
  phase: 'shifting',
  runId: OLD_RUN,
  stable: 'v1',
  canary: 'v3',
  route: DEFAULT,
  originalRoute: ORIGINAL,
  lastWritten: V3_AT_25,
  weight: 25,
  revertTo: { route: V3_AT_10, state: EARLIER_PAUSED },
  startedAt: OLDER_START,
  updatedAt: OLD_UPDATED,
}

const PAUSED_AT_10: RolloutState = {
  version: 1,
  phase: 'paused',
  runId: OLD_RUN,
  stable: 'v1',
  canary: 'v3',
  route: DEFAULT,
  originalRoute: ORIGINAL,
  lastWritten: V3_AT_10,
  weight: 10,
  startedAt: OLD_START,
  updatedAt: OLD_UPDATED,
}

/** Not a state this action writes (finish at 100 promotes), but one decodeState accepts. */
const PAUSED_AT_100: RolloutState = {
  version: 1,
  phase: 'paused',
  runId: OLD_RUN,
  stable: 'v1',
  canary: 'v3',
  route: NAMED,
  originalRoute: ORIGINAL,
  lastWritten: V3_ALL,
  weight: 100,
  startedAt: OLD_START,
  updatedAt: OLD_UPDATED,
}

const PROMOTED_V2: RolloutState = {
  version: 1,
  phase: 'promoted',
  runId: OLD_RUN,
  stable: 'v1',
  canary: 'v2',
  route: NAMED,
  originalRoute: ORIGINAL,
  lastWritten: V2_ALL,
  weight: 100,
  startedAt: OLD_START,
  updatedAt: OLD_UPDATED,
}

const ROLLED_BACK_V2: RolloutState = {
  version: 1,
  phase: 'rolled-back',
  runId: OLD_RUN,
  stable: 'v1',
  canary: 'v2',
  route: NAMED,
  originalRoute: ORIGINAL,
  lastWritten: ORIGINAL,
  weight: 0,
  startedAt: OLD_START,
  updatedAt: OLD_UPDATED,
}

/** Rolled back by a revert to a route that was not the original one (the route at that run's start). */
const ROLLED_BACK_ELSEWHERE: RolloutState = {
  version: 1,
  phase: 'rolled-back',
  runId: OLD_RUN,
  stable: 'v1',
  canary: 'v2',
  route: NAMED,
  originalRoute: ORIGINAL,
  lastWritten: V2_AT_10,
  weight: 10,
  startedAt: OLD_START,
  updatedAt: OLD_UPDATED,
}

/** This run's state after its first step of a rollout started afresh. */
const OWN_SHIFTING: RolloutState = {
  version: 1,
  phase: 'shifting',
  runId: NEW_RUN,
  stable: 'v1',
  canary: 'v3',
  route: NAMED,
  originalRoute: ORIGINAL,
  lastWritten: V3_AT_10,
  weight: 10,
  revertTo: { route: ORIGINAL },
  startedAt: RUN_START,
  updatedAt: '2026-02-01T10:01:00.000Z',
}

/** This run's state after taking DEAD_SHIFTING over. */
const TAKEN_OVER: RolloutState = {
  version: 1,
  phase: 'shifting',
  runId: NEW_RUN,
  stable: 'v1',
  canary: 'v3',
  route: NAMED,
  originalRoute: ORIGINAL,
  lastWritten: V3_AT_25,
  weight: 25,
  revertTo: { route: V3_AT_10, state: EARLIER_PAUSED },
  startedAt: OLDER_START,
  updatedAt: '2026-02-01T10:01:00.000Z',
}

/** This run paused at 50 (the answer to that write was lost, the re-read shows it). */
const OWN_PAUSED: RolloutState = {
  version: 1,
  phase: 'paused',
  runId: NEW_RUN,
  stable: 'v1',
  canary: 'v3',
  route: NAMED,
  originalRoute: ORIGINAL,
  lastWritten: V3_AT_50,
  weight: 50,
  startedAt: RUN_START,
  updatedAt: '2026-02-01T10:05:00.000Z',
}

/** This run promoted (the answer to that write was lost, the re-read shows it). */
const OWN_PROMOTED: RolloutState = {
  version: 1,
  phase: 'promoted',
  runId: NEW_RUN,
  stable: 'v1',
  canary: 'v3',
  route: NAMED,
  originalRoute: ORIGINAL,
  lastWritten: V3_ALL,
  weight: 100,
  startedAt: RUN_START,
  updatedAt: '2026-02-01T10:06:00.000Z',
}

const FRESH: RunContext = {
  runId: NEW_RUN,
  now: NOW,
  startedAt: RUN_START,
  stable: 'v1',
  canary: 'v3',
  selector: NAMED,
  originalRoute: ORIGINAL,
}
const AFTER_PROMOTED: RunContext = { ...FRESH, stable: 'v2', originalRoute: V2_ALL, before: PROMOTED_V2 }
const AFTER_ROLLED_BACK: RunContext = { ...FRESH, before: ROLLED_BACK_V2 }
const CONTINUING_PAUSED: RunContext = { ...FRESH, before: PAUSED_AT_10 }
const CONTINUING_PAUSED_AT_100: RunContext = { ...FRESH, before: PAUSED_AT_100 }
const TAKING_OVER: RunContext = { ...FRESH, before: DEAD_SHIFTING }
/** All a restore (revert, rollback) needs. */
const MOMENT: TransitionContext = { runId: NEW_RUN, now: NOW }

interface Case {
  name: string
  state: RolloutState | undefined
  event: TransitionEvent
  ctx: RunContext
  /** The state written, undefined for no state annotation, or 'refused' for a TransitionError. */
  expected: RolloutState | undefined | 'refused'
}

const CASES: Case[] = [
  // none
  {
    name: 'take-over with no state to take over',
    state: undefined,
    event: { type: 'take-over', weight: 25, route: V3_AT_25, revertTo: { route: V3_AT_10 } },
    ctx: FRESH,
    expected: 'refused',
  },
  {
    name: 'the first step of a rollout started afresh',
    state: undefined,
    event: { type: 'shift', weight: 10, route: V3_AT_10, revertTo: { route: ORIGINAL } },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'shifting',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_10,
      weight: 10,
      revertTo: { route: ORIGINAL },
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'a rollout started afresh with no step above the weight: paused',
    state: undefined,
    event: { type: 'hold', weight: 0, route: ORIGINAL },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'paused',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'finish before any step',
    state: undefined,
    event: { type: 'finish', weight: 100, route: V3_ALL },
    ctx: FRESH,
    expected: 'refused',
  },
  {
    name: 'revert after the annotation was removed by hand, nothing to restore: no state',
    state: undefined,
    event: { type: 'revert', route: ORIGINAL, restoredWeight: 0 },
    ctx: FRESH,
    expected: undefined,
  },
  {
    name: 'revert after the annotation was removed by hand: the state the run began from comes back',
    state: undefined,
    event: { type: 'revert', route: V2_ALL, restoredWeight: 0, to: PROMOTED_V2 },
    ctx: AFTER_PROMOTED,
    expected: {
      version: 1,
      phase: 'promoted',
      runId: OLD_RUN,
      stable: 'v1',
      canary: 'v2',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V2_ALL,
      weight: 100,
      startedAt: OLD_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'rollback with no state',
    state: undefined,
    event: { type: 'rollback', originalWeight: 0 },
    ctx: FRESH,
    expected: 'refused',
  },
  // shifting
  {
    name: "take-over of a dead run's shift: its revertTo kept, its startedAt kept, this run's id and selector",
    state: DEAD_SHIFTING,
    event: {
      type: 'take-over',
      weight: 25,
      route: V3_AT_25,
      revertTo: { route: V3_AT_10, state: EARLIER_PAUSED },
    },
    ctx: TAKING_OVER,
    expected: {
      version: 1,
      phase: 'shifting',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_25,
      weight: 25,
      revertTo: {
        route: V3_AT_10,
        state: {
          version: 1,
          phase: 'paused',
          runId: OLDER_RUN,
          stable: 'v1',
          canary: 'v3',
          route: DEFAULT,
          originalRoute: ORIGINAL,
          lastWritten: V3_AT_10,
          weight: 10,
          startedAt: OLDER_START,
          updatedAt: OLDER_UPDATED,
        },
      },
      startedAt: OLDER_START,
      updatedAt: NOW,
    },
  },
  {
    name: "take-over of this run's own shift",
    state: OWN_SHIFTING,
    event: { type: 'take-over', weight: 10, route: V3_AT_10, revertTo: { route: ORIGINAL } },
    ctx: FRESH,
    expected: 'refused',
  },
  {
    name: 'the next step of a rollout started afresh',
    state: OWN_SHIFTING,
    event: { type: 'shift', weight: 25, route: V3_AT_25, revertTo: { route: ORIGINAL } },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'shifting',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_25,
      weight: 25,
      revertTo: { route: ORIGINAL },
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'the next step after a take-over keeps the dead run’s startedAt',
    state: TAKEN_OVER,
    event: {
      type: 'shift',
      weight: 50,
      route: V3_AT_50,
      revertTo: { route: V3_AT_10, state: EARLIER_PAUSED },
    },
    ctx: TAKING_OVER,
    expected: {
      version: 1,
      phase: 'shifting',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_50,
      weight: 50,
      revertTo: {
        route: V3_AT_10,
        state: {
          version: 1,
          phase: 'paused',
          runId: OLDER_RUN,
          stable: 'v1',
          canary: 'v3',
          route: DEFAULT,
          originalRoute: ORIGINAL,
          lastWritten: V3_AT_10,
          weight: 10,
          startedAt: OLDER_START,
          updatedAt: OLDER_UPDATED,
        },
      },
      startedAt: OLDER_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'a taken-over weight with no step above it: paused, without revertTo',
    state: TAKEN_OVER,
    event: { type: 'hold', weight: 25, route: V3_AT_25 },
    ctx: TAKING_OVER,
    expected: {
      version: 1,
      phase: 'paused',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_25,
      weight: 25,
      startedAt: OLDER_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'finish at 100: promoted, without revertTo',
    state: OWN_SHIFTING,
    event: { type: 'finish', weight: 100, route: V3_ALL },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'promoted',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_ALL,
      weight: 100,
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'finish below 100: paused, without revertTo',
    state: OWN_SHIFTING,
    event: { type: 'finish', weight: 10, route: V3_AT_10 },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'paused',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_10,
      weight: 10,
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'revert of a rollout started from nothing: rolled back at the restored weight',
    state: OWN_SHIFTING,
    event: { type: 'revert', route: ORIGINAL, restoredWeight: 0 },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'rolled-back',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'revert of a taken-over rollout: the state the dead run began from, recording the restored route',
    state: TAKEN_OVER,
    event: { type: 'revert', route: V3_AT_10, restoredWeight: 10, to: EARLIER_PAUSED },
    ctx: TAKING_OVER,
    expected: {
      version: 1,
      phase: 'paused',
      runId: OLDER_RUN,
      stable: 'v1',
      canary: 'v3',
      route: DEFAULT,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_10,
      weight: 10,
      startedAt: OLDER_START,
      updatedAt: NOW,
    },
  },
  {
    name: "rollback of a dead run's shift: this run's id, its selector kept",
    state: DEAD_SHIFTING,
    event: { type: 'rollback', originalWeight: 0 },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'rolled-back',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: DEFAULT,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: OLDER_START,
      updatedAt: NOW,
    },
  },
  // paused
  {
    name: 'take-over of a paused rollout',
    state: PAUSED_AT_10,
    event: { type: 'take-over', weight: 10, route: V3_AT_10, revertTo: { route: V3_AT_10 } },
    ctx: CONTINUING_PAUSED,
    expected: 'refused',
  },
  {
    name: 'continuing a paused rollout: its startedAt kept, this run’s id and selector',
    state: PAUSED_AT_10,
    event: { type: 'shift', weight: 50, route: V3_AT_50, revertTo: { route: V3_AT_10, state: PAUSED_AT_10 } },
    ctx: CONTINUING_PAUSED,
    expected: {
      version: 1,
      phase: 'shifting',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_50,
      weight: 50,
      revertTo: {
        route: V3_AT_10,
        state: {
          version: 1,
          phase: 'paused',
          runId: OLD_RUN,
          stable: 'v1',
          canary: 'v3',
          route: DEFAULT,
          originalRoute: ORIGINAL,
          lastWritten: V3_AT_10,
          weight: 10,
          startedAt: OLD_START,
          updatedAt: OLD_UPDATED,
        },
      },
      startedAt: OLD_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'a paused rollout with no step above it stays paused, under this run',
    state: PAUSED_AT_10,
    event: { type: 'hold', weight: 10, route: V3_AT_10 },
    ctx: CONTINUING_PAUSED,
    expected: {
      version: 1,
      phase: 'paused',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_10,
      weight: 10,
      startedAt: OLD_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'a paused state at 100 finishes as promoted',
    state: PAUSED_AT_100,
    event: { type: 'finish', weight: 100, route: V3_ALL },
    ctx: CONTINUING_PAUSED_AT_100,
    expected: {
      version: 1,
      phase: 'promoted',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_ALL,
      weight: 100,
      startedAt: OLD_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'revert after the answer to the pausing write was lost',
    state: OWN_PAUSED,
    event: { type: 'revert', route: ORIGINAL, restoredWeight: 0 },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'rolled-back',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'rollback of a paused rollout',
    state: PAUSED_AT_10,
    event: { type: 'rollback', originalWeight: 0 },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'rolled-back',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: DEFAULT,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: OLD_START,
      updatedAt: NOW,
    },
  },
  // promoted
  {
    name: 'take-over of a promoted rollout',
    state: PROMOTED_V2,
    event: { type: 'take-over', weight: 100, route: V2_ALL, revertTo: { route: V2_ALL } },
    ctx: AFTER_PROMOTED,
    expected: 'refused',
  },
  {
    name: 'a new canary after a promotion starts afresh from the promoted route',
    state: PROMOTED_V2,
    event: {
      type: 'shift',
      weight: 10,
      route: V3_AT_10_OVER_V2,
      revertTo: { route: V2_ALL, state: PROMOTED_V2 },
    },
    ctx: AFTER_PROMOTED,
    expected: {
      version: 1,
      phase: 'shifting',
      runId: NEW_RUN,
      stable: 'v2',
      canary: 'v3',
      route: NAMED,
      originalRoute: V2_ALL,
      lastWritten: V3_AT_10_OVER_V2,
      weight: 10,
      revertTo: {
        route: V2_ALL,
        state: {
          version: 1,
          phase: 'promoted',
          runId: OLD_RUN,
          stable: 'v1',
          canary: 'v2',
          route: NAMED,
          originalRoute: ORIGINAL,
          lastWritten: V2_ALL,
          weight: 100,
          startedAt: OLD_START,
          updatedAt: OLD_UPDATED,
        },
      },
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'a new canary after a promotion with no step above its weight: paused afresh',
    state: PROMOTED_V2,
    event: { type: 'hold', weight: 0, route: V2_ALL },
    ctx: AFTER_PROMOTED,
    expected: {
      version: 1,
      phase: 'paused',
      runId: NEW_RUN,
      stable: 'v2',
      canary: 'v3',
      route: NAMED,
      originalRoute: V2_ALL,
      lastWritten: V2_ALL,
      weight: 0,
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'finish of a promoted rollout',
    state: PROMOTED_V2,
    event: { type: 'finish', weight: 100, route: V2_ALL },
    ctx: AFTER_PROMOTED,
    expected: 'refused',
  },
  {
    name: 'revert after the answer to the promoting write was lost',
    state: OWN_PROMOTED,
    event: { type: 'revert', route: ORIGINAL, restoredWeight: 0 },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'rolled-back',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'rollback of a promotion restores its original route',
    state: PROMOTED_V2,
    event: { type: 'rollback', originalWeight: 0 },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'rolled-back',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v2',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: OLD_START,
      updatedAt: NOW,
    },
  },
  // rolled-back
  {
    name: 'take-over of a rolled-back rollout',
    state: ROLLED_BACK_V2,
    event: { type: 'take-over', weight: 0, route: ORIGINAL, revertTo: { route: ORIGINAL } },
    ctx: AFTER_ROLLED_BACK,
    expected: 'refused',
  },
  {
    name: 'a rollout after a rollback starts afresh',
    state: ROLLED_BACK_V2,
    event: { type: 'shift', weight: 10, route: V3_AT_10, revertTo: { route: ORIGINAL, state: ROLLED_BACK_V2 } },
    ctx: AFTER_ROLLED_BACK,
    expected: {
      version: 1,
      phase: 'shifting',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: V3_AT_10,
      weight: 10,
      revertTo: {
        route: ORIGINAL,
        state: {
          version: 1,
          phase: 'rolled-back',
          runId: OLD_RUN,
          stable: 'v1',
          canary: 'v2',
          route: NAMED,
          originalRoute: ORIGINAL,
          lastWritten: ORIGINAL,
          weight: 0,
          startedAt: OLD_START,
          updatedAt: OLD_UPDATED,
        },
      },
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'a rollout after a rollback with no step above its weight: paused afresh',
    state: ROLLED_BACK_V2,
    event: { type: 'hold', weight: 0, route: ORIGINAL },
    ctx: AFTER_ROLLED_BACK,
    expected: {
      version: 1,
      phase: 'paused',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v3',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: RUN_START,
      updatedAt: NOW,
    },
  },
  {
    name: 'finish of a rolled-back rollout',
    state: ROLLED_BACK_V2,
    event: { type: 'finish', weight: 0, route: ORIGINAL },
    ctx: AFTER_ROLLED_BACK,
    expected: 'refused',
  },
  {
    name: 'revert of a rolled-back state (someone else’s)',
    state: ROLLED_BACK_V2,
    event: { type: 'revert', route: ORIGINAL, restoredWeight: 0 },
    ctx: AFTER_ROLLED_BACK,
    expected: 'refused',
  },
  {
    name: 'rollback of a state rolled back to another route than the original',
    state: ROLLED_BACK_ELSEWHERE,
    event: { type: 'rollback', originalWeight: 0 },
    ctx: FRESH,
    expected: {
      version: 1,
      phase: 'rolled-back',
      runId: NEW_RUN,
      stable: 'v1',
      canary: 'v2',
      route: NAMED,
      originalRoute: ORIGINAL,
      lastWritten: ORIGINAL,
      weight: 0,
      startedAt: OLD_START,
      updatedAt: NOW,
    },
  },
]

const FROM_PHASES: FromPhase[] = ['none', 'shifting', 'paused', 'promoted', 'rolled-back']
const EVENT_TYPES: EventType[] = ['take-over', 'shift', 'hold', 'finish', 'revert', 'rollback']

const fromPhaseOf = (state: RolloutState | undefined): FromPhase => state?.phase ?? 'none'

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}

// Every fixture is frozen, so that a transition that changes its input fails whichever test runs it first.
deepFreeze(CASES)

describe('next', () => {
  for (const testCase of CASES) {
    const label = `${fromPhaseOf(testCase.state)} × ${testCase.event.type}: ${testCase.name}`
    it(label, () => {
      if (testCase.expected === 'refused') {
        assert.throws(
          () => next(testCase.state, testCase.event, testCase.ctx),
          (err: unknown) =>
            err instanceof TransitionError &&
            err.name === 'TransitionError' &&
            err.from === fromPhaseOf(testCase.state) &&
            err.event === testCase.event.type &&
            err.message.includes(`'${testCase.event.type}'`) &&
            err.message.includes(fromPhaseOf(testCase.state)),
        )
      } else {
        assert.deepEqual(next(testCase.state, testCase.event, testCase.ctx), testCase.expected)
      }
    })
  }

  it('covers every (from-phase × event) pair', () => {
    const covered = new Set(CASES.map((testCase) => `${fromPhaseOf(testCase.state)} × ${testCase.event.type}`))
    const missing = FROM_PHASES.flatMap((from) => EVENT_TYPES.map((type) => `${from} × ${type}`)).filter(
      (pair) => !covered.has(pair),
    )
    assert.deepEqual(missing, [])
  })

  it('allows exactly what TRANSITIONS lists (a take-over only of another run)', () => {
    for (const testCase of CASES) {
      const listed = (TRANSITIONS[fromPhaseOf(testCase.state)] as readonly EventType[]).includes(testCase.event.type)
      const ownTakeOver = testCase.event.type === 'take-over' && testCase.state?.runId === testCase.ctx.runId
      assert.equal(testCase.expected !== 'refused', listed && !ownTakeOver, testCase.name)
    }
  })

  it('TRANSITIONS is the table the engine follows', () => {
    const sorted = (types: readonly EventType[]): EventType[] => [...types].sort()
    assert.deepEqual(Object.fromEntries(FROM_PHASES.map((from) => [from, sorted(TRANSITIONS[from])])), {
      none: ['hold', 'revert', 'shift'],
      shifting: ['finish', 'hold', 'revert', 'rollback', 'shift', 'take-over'],
      paused: ['finish', 'hold', 'revert', 'rollback', 'shift'],
      promoted: ['hold', 'revert', 'rollback', 'shift'],
      'rolled-back': ['hold', 'rollback', 'shift'],
    })
  })

  it('never changes its inputs (deep-frozen), and returns no input object as the new state', () => {
    for (const testCase of CASES) {
      const state = deepFreeze(structuredClone(testCase.state))
      const event = deepFreeze(structuredClone(testCase.event))
      const ctx = deepFreeze(structuredClone(testCase.ctx))
      const snapshot = structuredClone({ state, event, ctx })
      let result: RolloutState | undefined
      try {
        result = next(state, event, ctx)
      } catch (err) {
        if (!(err instanceof TransitionError)) throw err
        continue
      }
      assert.deepEqual({ state, event, ctx }, snapshot, testCase.name)
      assert.deepEqual(result, testCase.expected, testCase.name)
      if (result !== undefined) {
        assert.notEqual(result, state, testCase.name)
        assert.notEqual(result, event.type === 'revert' ? event.to : undefined, testCase.name)
      }
    }
  })

  it('writes a revertTo in exactly the shifting states', () => {
    for (const testCase of CASES) {
      if (testCase.expected === 'refused') continue
      const result = next(testCase.state, testCase.event, testCase.ctx)
      if (result === undefined) continue
      assert.equal('revertTo' in result, result.phase === 'shifting', testCase.name)
    }
  })

  it('drops a revertTo the restored state still carried', () => {
    const carrying: RolloutState = { ...EARLIER_PAUSED, revertTo: { route: ORIGINAL } }
    const result = next(TAKEN_OVER, { type: 'revert', route: V3_AT_10, restoredWeight: 10, to: carrying }, MOMENT)
    assert.equal(result !== undefined && 'revertTo' in result, false)
  })

  it('a restore needs only the run id and the time', () => {
    const rolledBack = next(OWN_SHIFTING, { type: 'rollback', originalWeight: 0 }, MOMENT)
    assert.equal(rolledBack?.phase, 'rolled-back')
    assert.equal(rolledBack?.updatedAt, NOW)
  })

  it('refuses a run event from every phase it does not list, naming phase and event', () => {
    const samples: Array<[RolloutState | undefined, Phase | 'none']> = [
      [undefined, 'none'],
      [ROLLED_BACK_V2, 'rolled-back'],
    ]
    for (const [state, from] of samples) {
      assert.throws(() => next(state, { type: 'finish', weight: 100, route: V3_ALL }, FRESH), {
        name: 'TransitionError',
        message: `no transition 'finish' from ${from}: not allowed from that phase`,
      })
    }
  })
})

type Landed = FailureFacts['landed']

/** Expected decision per facts, written out: `${concurrentChange} ${attempted} ${changed} ${landed}`. */
const FAILURE_TABLE: Record<string, FailureDecision> = {
  'true true true true': { result: 'unchanged', weight: 'live', unsettled: false },
  'true true true false': { result: 'unchanged', weight: 'live', unsettled: false },
  'true true true undefined': { result: 'unchanged', weight: 'live', unsettled: false },
  'true true false true': { result: 'unchanged', weight: 'live', unsettled: false },
  'true true false false': { result: 'unchanged', weight: 'live', unsettled: false },
  'true true false undefined': { result: 'unchanged', weight: 'live', unsettled: false },
  'true false true true': { result: 'unchanged', weight: 'live', unsettled: false },
  'true false true false': { result: 'unchanged', weight: 'live', unsettled: false },
  'true false true undefined': { result: 'unchanged', weight: 'live', unsettled: false },
  'true false false true': { result: 'unchanged', weight: 'live', unsettled: false },
  'true false false false': { result: 'unchanged', weight: 'live', unsettled: false },
  'true false false undefined': { result: 'unchanged', weight: 'live', unsettled: false },
  'false true true true': { revert: true },
  'false true true false': { revert: true },
  'false true true undefined': { revert: true },
  'false true false true': { revert: true },
  'false true false false': { result: 'unchanged', weight: 'run', unsettled: false },
  'false true false undefined': { result: 'unchanged', weight: 'run', unsettled: true },
  'false false true true': { revert: true },
  'false false true false': { revert: true },
  'false false true undefined': { revert: true },
  'false false false true': { revert: true },
  'false false false false': { result: 'unchanged', weight: 'run', unsettled: false },
  'false false false undefined': { result: 'unchanged', weight: 'run', unsettled: false },
}

const REVERT_OUTCOMES: Record<NonNullable<FailureFacts['revert']>, FailureDecision> = {
  done: { result: 'rolled-back', weight: 'restored', unsettled: false },
  overtaken: { result: 'unchanged', weight: 'live', unsettled: false },
  failed: { result: 'revert-failed', weight: 'current', unsettled: true },
}

function allFacts(): FailureFacts[] {
  const booleans = [true, false]
  const landed: Landed[] = [true, false, undefined]
  return booleans.flatMap((concurrentChange) =>
    booleans.flatMap((attempted) =>
      booleans.flatMap((changed) =>
        landed.map((landedNow) => ({ concurrentChange, attempted, changed, landed: landedNow })),
      ),
    ),
  )
}

const keyOf = (facts: FailureFacts): string =>
  `${facts.concurrentChange} ${facts.attempted} ${facts.changed} ${facts.landed}`

describe('afterFailure', () => {
  it('the table names all 24 combinations of facts', () => {
    assert.deepEqual(allFacts().map(keyOf).sort(), Object.keys(FAILURE_TABLE).sort())
  })

  for (const facts of allFacts()) {
    it(`before a revert: ${keyOf(facts)}`, () => {
      assert.deepEqual(afterFailure(facts), FAILURE_TABLE[keyOf(facts)])
    })
  }

  for (const facts of allFacts()) {
    const needsRevert = 'revert' in (FAILURE_TABLE[keyOf(facts)] as FailureDecision)
    for (const [revert, expected] of Object.entries(REVERT_OUTCOMES)) {
      const outcome = revert as keyof typeof REVERT_OUTCOMES
      it(`revert ${outcome}: ${keyOf(facts)}`, () => {
        if (needsRevert) assert.deepEqual(afterFailure({ ...facts, revert: outcome }), expected)
        else assert.throws(() => afterFailure({ ...facts, revert: outcome }), /needs no revert/)
      })
    }
  }

  it('a revert that failed is its own result, reported as paused', () => {
    const decision = afterFailure({
      concurrentChange: false,
      attempted: true,
      changed: true,
      landed: true,
      revert: 'failed',
    })
    assert.ok('result' in decision)
    assert.equal(decision.result, 'revert-failed')
    assert.equal(outputResult(decision.result), 'paused')
  })

  it('a concurrent change after this run changed traffic, its target route lost: no revert, kept as it left it, unsettled', () => {
    const lost = { concurrentChange: true, attempted: true, changed: true, landed: false, targetLost: true }
    assert.deepEqual(afterFailure(lost), { result: 'revert-failed', weight: 'current', unsettled: true })
    // before any change of this run, a lost target is only someone else's change
    assert.deepEqual(afterFailure({ ...lost, changed: false }), {
      result: 'unchanged',
      weight: 'live',
      unsettled: false,
    })
    assert.deepEqual(afterFailure({ ...lost, targetLost: false }), {
      result: 'unchanged',
      weight: 'live',
      unsettled: false,
    })
  })
})

describe('outputResult', () => {
  it('maps the results to the six values of the result output', () => {
    const expected: Record<Result, string> = {
      promoted: 'promoted',
      'rolled-back': 'rolled-back',
      paused: 'paused',
      previewed: 'previewed',
      'cleaned-up': 'cleaned-up',
      unchanged: 'unchanged',
      'revert-failed': 'paused',
    }
    for (const [result, output] of Object.entries(expected)) assert.equal(outputResult(result as Result), output)
    assert.equal(new Set(Object.values(expected)).size, 6)
  })

  it("a preview whose removal failed is still previewed (its route is live), as before 'revert-failed' existed", () => {
    assert.equal(outputResult('revert-failed', 'preview'), 'previewed')
    assert.equal(outputResult('revert-failed', 'rollout'), 'paused')
    assert.equal(outputResult('rolled-back', 'preview'), 'rolled-back')
  })
})
