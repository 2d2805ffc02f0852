// tap `after` hook: stops the control plane the test run started, if any.
import { stopControlPlane } from '../helpers/control-plane.js';

await stopControlPlane();
