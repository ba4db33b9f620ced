/* SPDX-License-Identifier: MIT */
/* Handing a Xen domain's network backends over to a restored image. */
#ifndef MCG_XEN_NICS_H
#define MCG_XEN_NICS_H

enum {
	XEN_NICS_IDLE,	/* only the NICs this kernel does not use (they are down) */
	XEN_NICS_ALL,	/* every NIC not handed over yet */
};

/*
 * Closes this kernel's connections to the domain's network backends and leaves
 * each backend waiting for a frontend to initialise, so that the image about
 * to be restored here reconnects its own NICs. Returns how many NICs the
 * domain has, 0 without Xen, -1 on failure (the reason is printed).
 */
int xen_nics_hand_over(int which, int timeout_ms);

#endif
