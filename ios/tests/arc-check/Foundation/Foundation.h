// A declarations-only stand-in for Apple's Foundation, just wide enough for KPLivePusher.m, so that
// the wrapper can be compiled with -fobjc-arc -fsyntax-only on a machine without Apple's SDK
// (GNUstep's and gcc's runtime headers do not compile under ARC). Nothing is linked or run with it:
// it lets clang's ARC checker see the real wrapper code (no retain/release outside the MRC blocks,
// bridge casts, __weak ivars). The signatures are Apple's.
#pragma once
#pragma clang system_header
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef signed char BOOL;
#define YES ((BOOL)1)
#define NO ((BOOL)0)
typedef long NSInteger;
typedef unsigned long NSUInteger;
typedef double NSTimeInterval;
#define FOUNDATION_EXPORT extern
#define NS_ENUM(_type, _name) enum _name : _type _name; enum _name : _type
#define NS_SWIFT_NAME(_name) __attribute__((swift_name(#_name)))
#define NS_ASSUME_NONNULL_BEGIN _Pragma("clang assume_nonnull begin")
#define NS_ASSUME_NONNULL_END _Pragma("clang assume_nonnull end")

#define nil ((id)0)

// As in Apple's objc/NSObject.h: not nullability-audited.
@class NSString;

@protocol NSObject
- (BOOL)isEqual:(id)object;
- (BOOL)respondsToSelector:(SEL)aSelector;
@property (readonly, copy) NSString *description;
@end

__attribute__((objc_root_class))
@interface NSObject <NSObject> {
    id isa;
}
+ (instancetype)alloc;
- (instancetype)init;
- (void)dealloc;
@end

NS_ASSUME_NONNULL_BEGIN


typedef struct {
    unsigned long state;
    id __unsafe_unretained _Nullable *_Nullable itemsPtr;
    unsigned long *_Nullable mutationsPtr;
    unsigned long extra[5];
} NSFastEnumerationState;

@protocol NSFastEnumeration
- (NSUInteger)countByEnumeratingWithState:(NSFastEnumerationState *)state
                                  objects:(id __unsafe_unretained _Nullable[_Nonnull])buffer
                                    count:(NSUInteger)len;
@end

@interface NSString : NSObject
@property (nullable, readonly) const char *UTF8String __attribute__((objc_returns_inner_pointer));
+ (nullable instancetype)stringWithUTF8String:(const char *)s;
+ (instancetype)stringWithFormat:(NSString *)format, ... __attribute__((format(__NSString__, 1, 2)));
- (id)copy;
@end

@interface NSArray<__covariant T> : NSObject <NSFastEnumeration>
@end
@interface NSMutableArray<T> : NSArray<T>
+ (instancetype)arrayWithCapacity:(NSUInteger)n;
- (void)addObject:(T)o;
@end

@interface NSDictionary<K, V> : NSObject
+ (instancetype)dictionaryWithObjects:(const V _Nonnull[_Nullable])objects
                              forKeys:(const K _Nonnull[_Nullable])keys
                                count:(NSUInteger)count;
@end

@interface NSData : NSObject
@property (readonly) const void *bytes __attribute__((objc_returns_inner_pointer));
@property (readonly) NSUInteger length;
+ (instancetype)dataWithBytes:(nullable const void *)bytes length:(NSUInteger)length;
@end
@interface NSMutableData : NSData
@property (readonly) void *mutableBytes __attribute__((objc_returns_inner_pointer));
+ (nullable instancetype)dataWithCapacity:(NSUInteger)n;
+ (nullable instancetype)dataWithLength:(NSUInteger)n;
- (void)appendBytes:(const void *)bytes length:(NSUInteger)length;
- (void)appendData:(NSData *)other;
@end

typedef NSString *NSErrorDomain;
typedef NSString *NSErrorUserInfoKey;
FOUNDATION_EXPORT NSErrorUserInfoKey const NSLocalizedDescriptionKey;
FOUNDATION_EXPORT NSErrorUserInfoKey const NSLocalizedFailureReasonErrorKey;

@interface NSError : NSObject
+ (instancetype)errorWithDomain:(NSErrorDomain)domain code:(NSInteger)code userInfo:(nullable NSDictionary *)dict;
@end

NS_ASSUME_NONNULL_END
