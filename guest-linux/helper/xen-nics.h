/* SPDX-License-Identifier: MIT */
/* Handing a Xen domain's network backends over to a restored image. */
#ifndef MCG_XEN_NICS_H
#define MCG_XEN_NICS_H

/*
 * Closes this kernel's connections to the domain's network backends and leaves
 * each backend waiting for a frontend to initialise, so that the image about
 * to be restored here reconnects its own NICs. Returns how many it handed
 * over, 0 without Xen, -1 on failure (the reason is printed).
 */
int xen_nics_hand_over(int timeout_ms);

#endif
