/* Internal result codes shared by every module. PL_OK is 0, errors are
 * negative; PL_AGAIN and PL_DECLINED are control codes, not failures (the
 * nginx convention). Client-visible protocol codes live in util/errors.h. */
#ifndef PL_STATUS_H
#define PL_STATUS_H

enum pl_status {
    PL_OK = 0,
    PL_ERR = -1,      /* generic failure */
    PL_ENOMEM = -2,   /* allocation failed */
    PL_EINVAL = -3,   /* malformed input */
    PL_AGAIN = -4,    /* would block / need more input */
    PL_DECLINED = -5, /* not mine, try the next handler */
    PL_EIO = -6,      /* storage or socket I/O failed */
    PL_ELIMIT = -7,   /* a configured limit was exceeded */
    PL_ENOTFOUND = -8,
    PL_ECONFLICT = -9, /* the thing exists in a state that refuses the change */
};

#endif
